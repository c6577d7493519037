/**
 * UDP port pairs for the plain RTP side: RTP on an even port, RTCP on the next one, both from
 * [portMin, portMax]. A cursor walks the range so a just-released pair is not reused at once
 * (late packets of the old call would land in the new one).
 */
import dgram from 'node:dgram';

export interface PortPair {
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
  port: number;
}

function bind(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4' });
    const onError = (err: Error): void => {
      s.close();
      reject(err);
    };
    s.once('error', onError);
    s.bind(port, host, () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

export function closeSocket(s: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      s.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

export class PortAllocator {
  private cursor: number;
  readonly inUse = new Set<number>();

  constructor(
    private readonly host: string,
    private readonly min: number,
    private readonly max: number,
  ) {
    if (min < 1 || max > 65535 || max - min < 1) throw new Error(`bad RTP port range ${min}-${max}`);
    this.cursor = this.first();
  }

  private first(): number {
    return this.min % 2 === 0 ? this.min : this.min + 1;
  }

  async allocate(): Promise<PortPair> {
    const pairs = Math.floor((this.max - this.first()) / 2) + 1;
    for (let i = 0; i < pairs; i++) {
      const port = this.cursor;
      this.cursor += 2;
      if (this.cursor + 1 > this.max) this.cursor = this.first();
      if (this.inUse.has(port) || port + 1 > this.max) continue;
      let rtp: dgram.Socket | undefined;
      try {
        rtp = await bind(this.host, port);
        const rtcp = await bind(this.host, port + 1);
        this.inUse.add(port);
        return { rtp, rtcp, port };
      } catch {
        if (rtp) await closeSocket(rtp);
      }
    }
    throw new Error(`no free RTP port pair in ${this.min}-${this.max}`);
  }

  /** Port pairs in the range, and how many are free (not held by a session). */
  capacity(): { pairs: number; free: number } {
    const pairs = Math.floor((this.max - this.first() - 1) / 2) + 1;
    return { pairs, free: Math.max(0, pairs - this.inUse.size) };
  }

  async release(pair: PortPair): Promise<void> {
    await Promise.all([closeSocket(pair.rtp), closeSocket(pair.rtcp)]);
    this.inUse.delete(pair.port);
  }
}
