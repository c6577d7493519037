/**
 * The life of one bridged call, as an explicit state machine.
 *
 *   new ──► inviting ──► ringing ──► early ──► accepting ──► active
 *    │         │   ╲        │  ╲       │           │            │
 *    │         │    ╲───────┼───╲──────┼──► (2xx) ─┘            │
 *    ▼         ▼            ▼          ▼           ▼            ▼
 *    └─────────┴────────────┴──────────┴───────────┴────────────┴──► ending ──► ended
 *
 * - new:       WhatsApp's connect webhook arrived; nothing sent yet.
 * - inviting:  media offered, INVITE on its way to the PBX.
 * - ringing:   the PBX said 180 (or 183 without SDP).
 * - early:     the PBX's SDP arrived (183), WhatsApp got `pre_accept`: ICE/DTLS come up, no audio.
 * - accepting: the PBX answered (2xx, ACKed); `accept` is on its way to WhatsApp.
 * - active:    both legs up, audio flows.
 * - ending:    teardown in progress (see failure-map.ts for what is sent to whom).
 * - ended:     everything released; terminal.
 */
export const CALL_STATES = ['new', 'inviting', 'ringing', 'early', 'accepting', 'active', 'ending', 'ended'] as const;
export type CallState = (typeof CALL_STATES)[number];

/** Legal moves. Anything not listed is a bug and is refused. */
export const TRANSITIONS: Readonly<Record<CallState, readonly CallState[]>> = {
  new: ['inviting', 'ending'],
  inviting: ['ringing', 'early', 'accepting', 'ending'],
  ringing: ['early', 'accepting', 'ending'],
  early: ['accepting', 'ending'],
  accepting: ['active', 'ending'],
  active: ['ending'],
  ending: ['ended'],
  ended: [],
};

/** Whether `table` allows the move (each call direction has its own table). */
export function isLegalMove<S extends string>(table: Readonly<Record<S, readonly S[]>>, from: S, to: S): boolean {
  return table[from].includes(to);
}

export function canTransition(from: CallState, to: CallState): boolean {
  return isLegalMove(TRANSITIONS, from, to);
}

export class IllegalTransition extends Error {
  override readonly name = 'IllegalTransition';
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    super(`illegal call state transition ${from} -> ${to}`);
  }
}

/**
 * An outbound call: an agent on the PBX dials a WhatsApp user.
 *
 *   new ──► checking ──► connecting ──► ringing ──► answering ──► active
 *    │         │             │   ╲         │            │           │
 *    │         │             │    ╲────────┼──► (connect webhook) ──┘
 *    ▼         ▼             ▼             ▼            ▼           ▼
 *    └─────────┴─────────────┴─────────────┴────────────┴───────────┴──► ending ──► ended
 *
 * - checking:   the INVITE was admitted; WhatsApp call permission is being checked.
 * - connecting: media offered, Graph `connect` sent (or on its way).
 * - ringing:    WhatsApp said RINGING; the agent hears ringback (180).
 * - answering:  WhatsApp's SDP answer arrived (connect webhook); 200 OK sent, waiting for ACK.
 * - active:     both legs up.
 */
export type OutboundState = 'new' | 'checking' | 'connecting' | 'ringing' | 'answering' | 'active' | 'ending' | 'ended';

export const OUTBOUND_TRANSITIONS: Readonly<Record<OutboundState, readonly OutboundState[]>> = {
  new: ['checking', 'ending'],
  checking: ['connecting', 'ending'],
  connecting: ['ringing', 'answering', 'ending'],
  ringing: ['answering', 'ending'],
  answering: ['active', 'ending'],
  active: ['ending'],
  ending: ['ended'],
  ended: [],
};

/**
 * A click-to-call: the bridge calls a WhatsApp user (admin API), then an extension on the PBX.
 *
 *   new ──► checking ──► connecting ──► ringing ──► inviting ──► active
 *    │         │             │   ╲         │            │           │
 *    ▼         ▼             ▼    ╲────────┼──► (connect webhook)   ▼
 *    └─────────┴─────────────┴─────────────┴────────────┴───────────┴──► ending ──► ended
 *
 * - checking:   WhatsApp call permission is being checked.
 * - connecting: media offered, Graph `connect` sent.
 * - ringing:    WhatsApp said RINGING.
 * - inviting:   the user answered (connect webhook); the extension is being INVITEd.
 * - active:     the extension answered; both legs up.
 */
export type ClickState = 'new' | 'checking' | 'connecting' | 'ringing' | 'inviting' | 'active' | 'ending' | 'ended';

export const CLICK_TRANSITIONS: Readonly<Record<ClickState, readonly ClickState[]>> = {
  new: ['checking', 'ending'],
  checking: ['connecting', 'ending'],
  connecting: ['ringing', 'inviting', 'ending'],
  ringing: ['inviting', 'ending'],
  inviting: ['active', 'ending'],
  active: ['ending'],
  ending: ['ended'],
  ended: [],
};
