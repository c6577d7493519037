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

export function canTransition(from: CallState, to: CallState): boolean {
  return TRANSITIONS[from].includes(to);
}

export class IllegalTransition extends Error {
  override readonly name = 'IllegalTransition';
  constructor(
    readonly from: CallState,
    readonly to: CallState,
  ) {
    super(`illegal call state transition ${from} -> ${to}`);
  }
}
