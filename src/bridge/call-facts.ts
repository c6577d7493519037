/** The call record's facts of an inbound or outbound call, gathered when it has ended. */
import type { InboundCall } from './inbound-call.js';
import type { OutboundCall } from './outbound-call.js';
import { wallClock, type CallFacts } from './observer.js';

export function inboundFacts(c: InboundCall): CallFacts {
  const t = c.timings;
  const now = performance.now();
  return {
    phoneNumberId: c.phoneNumberId,
    whatsappUser: c.event.userWaId,
    businessNumber: c.event.businessNumber,
    pbxTarget: c.routeDecision.target,
    route: c.routeDecision.rule,
    times: {
      receivedAt: wallClock(now, t.connectReceived)!,
      ringingAt: wallClock(now, t.ringing),
      answeredAt: wallClock(now, t.acceptSent),
      endedAt: wallClock(now, t.ended ?? now)!,
      setupMs: {
        ...(t.inviteSent !== undefined ? { webhookToInvite: t.inviteSent - t.connectReceived } : {}),
        ...(t.acceptSent !== undefined && t.pbxAnswered !== undefined ? { pbxAnswerToAccept: t.acceptSent - t.pbxAnswered } : {}),
      },
    },
    media: c.mediaStats(),
  };
}

export function outboundFacts(c: OutboundCall): CallFacts {
  const t = c.timings;
  const now = performance.now();
  return {
    phoneNumberId: c.phoneNumberId,
    whatsappUser: c.to,
    pbxTarget: c.invite.from.uri,
    times: {
      receivedAt: wallClock(now, t.inviteReceived)!,
      ringingAt: wallClock(now, t.ringing),
      answeredAt: wallClock(now, t.okSent),
      endedAt: wallClock(now, t.ended ?? now)!,
      setupMs: {
        ...(t.connectSent !== undefined ? { pbxInviteToConnect: t.connectSent - t.inviteReceived } : {}),
        ...(t.okSent !== undefined && t.answerReceived !== undefined ? { whatsappAnswerTo200: t.okSent - t.answerReceived } : {}),
      },
    },
    media: c.mediaStats(),
  };
}
