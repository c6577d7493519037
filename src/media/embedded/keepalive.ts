/**
 * Keep-alive toward WhatsApp: while the PBX sends no audio, WhatsApp must still get a steady
 * 50 packets/s (it drops a call after ~20 s without business media at the start, 30 s
 * mid-call). The schedule below decides how many 20 ms silence frames are due at each engine
 * tick: frame k is due at start + 20k ms, so a late tick sends what fell due since the last
 * one instead of losing the remainder (counting from "now" on each tick gave ~38/s).
 */

export const FILL_FRAME_MS = 20;

export class FillSchedule {
  /** When the next frame is due (performance.now() ms); undefined while not filling. */
  private nextMs: number | undefined;

  constructor(
    /** Frames owed after a late tick are sent at once, up to this many per tick. */
    private readonly maxBurst = 10,
    /** Past this much lag (an event-loop stall), the schedule restarts from now. */
    private readonly maxLagMs = 200,
  ) {}

  /** How many frames to send now; the first call after stop() starts the schedule at `now`. */
  due(now: number): number {
    if (this.nextMs === undefined || now - this.nextMs > this.maxLagMs) this.nextMs = now;
    let n = 0;
    while (this.nextMs <= now && n < this.maxBurst) {
      this.nextMs += FILL_FRAME_MS;
      n++;
    }
    return n;
  }

  /** The PBX sends audio again: the next fill starts afresh. */
  stop(): void {
    this.nextMs = undefined;
  }

  get filling(): boolean {
    return this.nextMs !== undefined;
  }
}
