import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../../src/http/server.js';
import { createWebhookSender, sendWebhook } from '../../src/simulator/webhook-sender.js';
import { silentLogger } from '../../src/util/log.js';
import { WebhookAuth } from '../../src/whatsapp/webhook-auth.js';
import type { WaEvent } from '../../src/whatsapp/types.js';

/** The simulator posts like a 360dialog direct client (custom header, no HMAC) over real HTTP. */
const HEADER = { name: 'X-Bridge-Key', value: 'shared-value-123' };
const events: WaEvent[] = [];
let app: ReturnType<typeof createHttpServer>;
let url: string;

beforeAll(async () => {
  app = createHttpServer({
    log: silentLogger(),
    security: new WebhookAuth({ provider: '360dialog', appSecret: '', webhookAuthHeader: HEADER, allowUnsignedWebhooks: false, verifyToken: '' }),
    parse: () => ({ events: [], ignored: [] }),
    onEvents: (e) => events.push(...e),
    health: async () => ({ ok: true }),
  });
  url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/webhook`;
});
afterAll(() => app.close());

describe('webhook sender with 360dialog custom header', () => {
  it('sends the configured header; a wrong or missing one is refused', async () => {
    const sender = createWebhookSender({ url, appSecret: '', provider: '360dialog', authHeader: HEADER, phoneNumberId: '1', businessNumber: '13175551399' });
    expect(await sender.status({ callId: 'wacid.A', userWaId: '1', status: 'RINGING' } as never)).toBe(200);
    expect(await sender.status({ callId: 'wacid.A', userWaId: '1', status: 'RINGING' } as never, { signature: 'wrong' })).toBe(401);
    expect(await sender.status({ callId: 'wacid.A', userWaId: '1', status: 'RINGING' } as never, { signature: 'none' })).toBe(401);
    expect(await sendWebhook(url, { object: 'whatsapp_business_account', entry: [] }, { appSecret: '' })).toBe(401);
  });
});
