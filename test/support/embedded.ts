/** The embedded media engine as the media-level e2e tests run it: loopback only, a random port block. */
import { createEmbeddedEngine, type EmbeddedEngine } from '../../src/media/embedded/index.js';
import { silentLogger } from '../../src/util/log.js';

/** An embedded engine on 127.0.0.1 (RTP and ICE), with 1000 ports from a random block in 40000-59999. */
export async function loopbackEmbeddedEngine(): Promise<EmbeddedEngine> {
  const portMin = 40000 + Math.floor(Math.random() * 20) * 1000;
  return (await createEmbeddedEngine({
    rtpHost: '127.0.0.1',
    rtpAdvertiseHost: '127.0.0.1',
    iceAddresses: ['127.0.0.1'],
    portMin,
    portMax: portMin + 999,
    logger: silentLogger(),
  })) as EmbeddedEngine;
}
