import { describe, expect, it } from 'vitest';
import { createRtpengineEngine } from '../../src/media/rtpengine/index.js';
import { MediaError } from '../../src/media/types.js';
import { silentLogger } from '../../src/util/log.js';
import { freeUdpPort } from '../harness/rtpengine.js';

describe('rtpengine engine without rtpengine', () => {
  it('fails fast with a MediaError when nothing listens on the ng port', async () => {
    const port = await freeUdpPort();
    const t0 = Date.now();
    const err = await createRtpengineEngine({ ng: [{ host: '127.0.0.1', port }], timeoutMs: 300, logger: silentLogger() }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MediaError);
    expect((err as MediaError).engine).toBe('rtpengine');
    expect((err as MediaError).reason).toBe('unreachable');
    expect((err as MediaError).message).toContain('no reply within 300 ms');
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('rejects an empty ng list', async () => {
    await expect(createRtpengineEngine({ ng: [], logger: silentLogger() })).rejects.toBeInstanceOf(MediaError);
  });
});
