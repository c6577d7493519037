/** Media engines for a describe block of tests. */
import { afterAll, beforeAll } from 'vitest';
import { createRtpengineEngine } from '../../src/media/rtpengine/index.js';
import type { MediaEngine } from '../../src/media/types.js';
import { silentLogger } from '../../src/util/log.js';
import { randomMediaRange, startRtpengine, type RtpengineDaemon } from '../harness/rtpengine.js';

/**
 * For one describe block: a private rtpengine started in `beforeAll` with our rtpengine media
 * engine over it, both closed in `afterAll`. Read `engine`/`daemon` inside the tests.
 */
export function rtpengineForBlock(opts: { before?: () => void } = {}): { readonly engine: MediaEngine; readonly daemon: RtpengineDaemon } {
  let daemon: RtpengineDaemon | undefined;
  let engine: MediaEngine | undefined;
  beforeAll(async () => {
    opts.before?.();
    daemon = await startRtpengine({ ...randomMediaRange() });
    engine = await createRtpengineEngine({ ng: [daemon.ng], logger: silentLogger() });
  });
  afterAll(async () => {
    await engine?.close();
    await daemon?.stop();
  });
  return {
    get engine(): MediaEngine {
      if (!engine) throw new Error('rtpengineForBlock: used outside its describe block');
      return engine;
    },
    get daemon(): RtpengineDaemon {
      if (!daemon) throw new Error('rtpengineForBlock: used outside its describe block');
      return daemon;
    },
  };
}
