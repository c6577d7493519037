/**
 * A listening-quality estimate (MOS, 1..4.5) from what the media engine measured, after the
 * ITU-T G.107 E-model, simplified the way RTP monitors (RFC 3611 VoIP metrics, Homer, VoIPmonitor)
 * do it: R = 93.2 - Id(delay) - Ie,eff(codec, loss), then MOS from R (G.107 annex B).
 *
 * The effective delay adds the jitter buffer a receiver would need (twice the jitter) and the
 * codec's own framing. Codec impairments (Ie, Bpl) are G.113 Appendix I values; Opus is not in
 * G.113, so it is taken as a wideband-capable codec with the narrowband figures of G.722.
 */

interface CodecImpairment {
  /** Equipment impairment with no loss. */
  ie: number;
  /** Packet-loss robustness. */
  bpl: number;
}

const CODECS: Record<string, CodecImpairment> = {
  PCMU: { ie: 0, bpl: 4.3 }, // G.711 without PLC (G.113 Appendix I)
  PCMA: { ie: 0, bpl: 4.3 },
  G722: { ie: 0, bpl: 10 },
  OPUS: { ie: 0, bpl: 20 },
};

export interface QualityInput {
  /** Codec name as in SDP (PCMU, PCMA, G722, opus); unknown codecs count as G.711. */
  codec: string | undefined;
  /** Packets lost / packets expected, 0..1. */
  lossRatio: number;
  /** Interarrival jitter in ms (RFC 3550 §6.4.1). */
  jitterMs: number;
  /** One-way network delay in ms, if known (else 20 ms, a LAN figure). */
  delayMs?: number;
}

/** R-factor from the effective one-way delay (G.107 §7.3, the simplified Id of Cole & Rosenbluth). */
function delayImpairment(d: number): number {
  return 0.024 * d + (d > 177.3 ? 0.11 * (d - 177.3) : 0);
}

/** MOS (1.0..4.5, one decimal) for one direction of a call. */
export function estimateMos(q: QualityInput): number {
  const c = CODECS[(q.codec ?? 'PCMU').toUpperCase()] ?? CODECS['PCMU']!;
  const loss = Math.min(1, Math.max(0, Number.isFinite(q.lossRatio) ? q.lossRatio : 0)) * 100;
  const jitter = Math.max(0, Number.isFinite(q.jitterMs) ? q.jitterMs : 0);
  const delay = (q.delayMs ?? 20) + 2 * jitter + 20; // network + jitter buffer + one frame
  const ieEff = c.ie + (95 - c.ie) * (loss / (loss + c.bpl));
  const r = 93.2 - delayImpairment(delay) - ieEff;
  let mos: number;
  if (r <= 0) mos = 1;
  else if (r >= 100) mos = 4.5;
  else mos = 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6;
  return Math.round(Math.min(4.5, Math.max(1, mos)) * 10) / 10;
}
