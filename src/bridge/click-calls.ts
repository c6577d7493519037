/**
 * The bridge's click-to-call side: the admin API's request validated (numbers as digits, the
 * extension as a SIP URI or a short extension on the routing default's host), the live
 * click-to-call calls by biz_opaque_callback_data and WhatsApp call id (for the webhooks), and
 * what each call tells the observer and the call-ended listeners.
 */
import type { Config } from '../config/schema.js';
import { sipUri } from '../config/schema.js';
import { escapeUserPart } from '../sip/headers.js';
import { ClickCall, type ClickCallDeps, type ClickPlaced, type ClickRequest } from './click-call.js';
import { wallClock, type CallObserver, type EndedCallRecord, type StartedCall } from './observer.js';
import type { CallRefusal } from './bridge.js';

/** What the admin API posts: `{ to, extension, phoneNumberId? }`. */
export type ClickParse = { ok: true; request: Omit<ClickRequest, 'by'> } | { ok: false; error: string };

const MAX_URI = 256;
const EXTENSION = /^[A-Za-z0-9*#+._-]{1,32}$/;
/** E.164 as Graph's `to` wants it: digits only (a leading + is tolerated), a country code, 7 to 15 digits. */
const NUMBER = /^\+?([1-9]\d{6,14})$/;
const PHONE_NUMBER_ID = /^\d{1,32}$/;

/**
 * Validate a click-to-call request strictly. `extension` is a SIP URI (the routing's URI rule,
 * printable ASCII only, at most 256 characters) or an extension (`[A-Za-z0-9*#+._-]{1,32}`)
 * turned into `sip:<ext>@<routing.default's host>`. `phoneNumberId` must be one the bridge
 * serves; it defaults to outbound.phoneNumberId, else the first served.
 */
export function parseClickRequest(body: unknown, config: Pick<Config, 'outbound' | 'whatsapp'>, routing: Config['routing']): ClickParse {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { ok: false, error: 'a JSON object { to, extension, phoneNumberId? } is required' };
  const b = body as Record<string, unknown>;
  const extra = Object.keys(b).filter((k) => k !== 'to' && k !== 'extension' && k !== 'phoneNumberId');
  if (extra.length > 0) return { ok: false, error: `unknown field(s): ${extra.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}` };
  const to = typeof b.to === 'string' ? NUMBER.exec(b.to)?.[1] : undefined;
  if (!to) return { ok: false, error: '"to" must be the WhatsApp number as digits with its country code (E.164, 7 to 15 digits)' };
  const extension = extensionUri(b.extension, routing.default);
  if (!extension) return { ok: false, error: '"extension" must be a SIP URI (sip:user@host) or an extension of 1 to 32 characters A-Z a-z 0-9 * # + . _ -' };
  const served = config.whatsapp.phoneNumberIds;
  let phoneNumberId: string | undefined;
  if (b.phoneNumberId !== undefined) {
    if (typeof b.phoneNumberId !== 'string' || !PHONE_NUMBER_ID.test(b.phoneNumberId)) return { ok: false, error: '"phoneNumberId" must be digits' };
    if (served.length > 0 && !served.includes(b.phoneNumberId)) return { ok: false, error: '"phoneNumberId" is not a business number this bridge serves' };
    phoneNumberId = b.phoneNumberId;
  } else phoneNumberId = config.outbound.phoneNumberId ?? served[0];
  if (!phoneNumberId) return { ok: false, error: 'no business phone number id: give "phoneNumberId" or configure outbound.phoneNumberId' };
  return { ok: true, request: { to, extension, phoneNumberId } };
}

/** The answer to a click-to-call the bridge cannot take now: 503 while draining, 429 at a limit, with Retry-After. */
export function refusedClick(reason: CallRefusal): ClickPlaced {
  const draining = reason === 'draining';
  const error = draining ? 'the bridge is draining (shutting down)' : `the bridge is at its ${reason === 'setup-rate' ? 'call set-up rate' : 'concurrent call'} limit`;
  return { ok: false, status: draining ? 503 : 429, error, label: `refused-${reason}`, retryAfterSec: draining ? 30 : reason === 'setup-rate' ? 1 : 5 };
}

function extensionUri(ext: unknown, defaultTarget: string): string | undefined {
  if (typeof ext !== 'string') return undefined;
  if (EXTENSION.test(ext)) {
    const host = /^sips?:(?:[^@]*@)?([^;?>]+)/i.exec(defaultTarget)?.[1];
    return host ? `sip:${escapeUserPart(ext)}@${host}` : undefined;
  }
  // Visible ASCII only: no controls, no spaces, nothing that could end a header.
  if (ext.length > MAX_URI || !/^[\x21-\x7e]+$/.test(ext) || /[<>"]/.test(ext) || !sipUri.safeParse(ext).success || !/^sips?:[^@]+@[^@]+$/i.test(ext)) return undefined;
  return ext;
}

export interface ClickCallsDeps extends Omit<ClickCallDeps, 'onWhatsAppCallId' | 'onSipCallId' | 'onEnded'> {
  observer: (fn: (o: CallObserver) => void) => void;
  emitEnded: (rec: EndedCallRecord) => void;
}

/** The live click-to-call calls. */
export class ClickCalls {
  private readonly byOpaque = new Map<string, ClickCall>();
  private readonly byWaId = new Map<string, ClickCall>();

  constructor(private readonly deps: ClickCallsDeps) {}

  get size(): number {
    return this.byOpaque.size;
  }

  all(): ClickCall[] {
    return [...this.byOpaque.values()];
  }

  /** The call a webhook names, by WhatsApp call id or by our opaque data. */
  find(waCallId: string, opaque: string | undefined): ClickCall | undefined {
    return this.byWaId.get(waCallId) ?? (opaque ? this.byOpaque.get(opaque) : undefined);
  }

  /** By its own id, WhatsApp call id or SIP Call-ID (admin hang-up). */
  byAnyId(id: string): ClickCall | undefined {
    return this.byWaId.get(id) ?? this.all().find((c) => c.id === id || c.sipCallId === id);
  }

  /** Place the call; resolves once WhatsApp took it (`connect` answered) or it ended before. */
  place(request: ClickRequest): Promise<ClickPlaced> {
    const observe = this.deps.observer;
    const call = new ClickCall(request, {
      ...this.deps,
      onWhatsAppCallId: (c, id) => {
        // A call id that arrives after the call ended is not kept.
        if (this.byOpaque.get(c.opaque) === c) this.byWaId.set(id, c);
        observe((o) => o.identified(c.id, { waCallId: id }));
      },
      onSipCallId: (c, id) => observe((o) => o.identified(c.id, { sipCallId: id })),
      onEnded: (c, plan) => {
        this.byOpaque.delete(c.opaque);
        if (c.waCallId) this.byWaId.delete(c.waCallId);
        const t = c.timings;
        const now = performance.now();
        this.deps.emitEnded({
          direction: 'click-to-call',
          key: c.id,
          waCallId: c.waCallId,
          sipCallId: c.sipCallId,
          label: plan.label,
          whatsapp: plan.whatsapp,
          sip: plan.sip,
          phoneNumberId: c.phoneNumberId,
          whatsappUser: c.req.to,
          pbxTarget: c.req.extension,
          times: { receivedAt: wallClock(now, t.requested)!, ringingAt: wallClock(now, t.ringing), answeredAt: wallClock(now, t.answered), endedAt: wallClock(now, t.ended ?? now)!, setupMs: {} },
          media: c.mediaStats(),
        });
      },
    });
    this.byOpaque.set(call.opaque, call);
    const started: StartedCall = { direction: 'click-to-call', key: call.id, opaque: call.opaque, phoneNumberId: request.phoneNumberId, whatsappUser: request.to, pbx: request.extension };
    observe((o) => o.started(started));
    return call.start();
  }
}
