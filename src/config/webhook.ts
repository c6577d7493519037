import type { WebhookAuthConfig } from '../whatsapp/webhook-auth.js';
import type { WhatsAppConfig } from './schema.js';

/** The webhook authentication settings of a validated `whatsapp` section. */
export function webhookAuthOf(wa: WhatsAppConfig): WebhookAuthConfig {
  return {
    provider: wa.provider,
    appSecret: wa.appSecret,
    webhookAuthHeader: wa.provider === '360dialog' ? wa.webhookAuthHeader : undefined,
    allowUnsignedWebhooks: wa.allowUnsignedWebhooks,
    verifyToken: wa.verifyToken,
  };
}
