/**
 * The load bench's ng probe, in its own process (forked by bench/load.ts during a bridge run):
 * one offer + answer + delete every 100 ms to the same rtpengine, with the bridge's flags and
 * SDPs, timing the offer. It tells where a slow ng offer in the bridge run is spent: when the
 * probe's offers are fast while the bridge's are slow, the time is in the bridge's process (its
 * socket or event loop); when both are slow, it is rtpengine's (or the CPU it gets).
 *
 * IPC: parent → probe {type:'stop'}; probe → parent {type:'ready'} then {type:'result', p50, p90, p99, n, failed}.
 */
import { NgClient } from '../src/media/rtpengine/ng-client.js';
import { DELETE_NOW, PBX_ANSWER_TO_WHATSAPP, WHATSAPP_OFFER_TO_PBX } from '../src/media/rtpengine/flags.js';
import { iceLiteIntoMedia } from '../src/media/rtpengine/sdp-post.js';
import { silentLogger } from '../src/util/log.js';
import { quantile } from './harness.js';
import { loopbackOffer, SIPP_PBX_ANSWER } from './load-baseline.js';

const [host, port] = [process.argv[2]!, Number(process.argv[3])];
const ng = new NgClient(2000, silentLogger());
const offer = iceLiteIntoMedia(loopbackOffer());
const ms: number[] = [];
let failed = 0;
let n = 0;
let stopping = false;

process.on('message', (m: { type: string }) => {
  if (m.type === 'stop') stopping = true;
});
process.send!({ type: 'ready' });
while (!stopping) {
  const ids = { 'call-id': `probe-${process.pid}-${n++}`, 'from-tag': 'wa' };
  const t0 = performance.now();
  try {
    await ng.request({ host, port }, 'offer', { ...WHATSAPP_OFFER_TO_PBX, ...ids, sdp: offer });
    ms.push(performance.now() - t0);
    await ng.request({ host, port }, 'answer', { ...PBX_ANSWER_TO_WHATSAPP, ...ids, 'to-tag': 'pbx', sdp: SIPP_PBX_ANSWER });
  } catch {
    failed++;
  }
  await ng.request({ host, port }, 'delete', { ...ids, ...DELETE_NOW }).catch(() => undefined);
  const wait = t0 + 100 - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
ng.close();
process.send!({ type: 'result', n: ms.length, failed, p50: quantile(ms, 0.5), p90: quantile(ms, 0.9), p99: quantile(ms, 0.99) }, () => process.exit(0));
