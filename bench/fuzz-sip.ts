/**
 * SIP fuzz, long run: >= 100,000 seeded cases (UDP datagrams and TCP stream messages) against
 * the real stack, through test/fuzz/sip-fuzz.ts. Reports the front door's counters, the slowest
 * message against a baseline measured in the same run (sip.parse of a normal INVITE), heap
 * growth, and whether the stack still answers. The CPU budget per message is checked on a
 * GC-free timing (fastest of three runs of each case through the front door and `sip.parse`).
 * Exits 1 when a check fails.
 *
 *   node --expose-gc --import tsx bench/fuzz-sip.ts [seed] [udpCases] [tcpCases]
 *   (defaults: 24301 90000 12000; --expose-gc makes the heap figure a post-GC one)
 */
import sip from 'sip';
import { cpuPerMessage, runSipFuzz } from '../test/fuzz/sip-fuzz.js';

const seed = Number(process.argv[2] ?? 24301);
const udpCases = Number(process.argv[3] ?? 90_000);
const tcpCases = Number(process.argv[4] ?? 12_000);

// Baseline: what one ordinary message costs in `sip.parse`, on this machine, now.
const normal = sipInvite();
for (let i = 0; i < 2000; i++) sip.parse(normal);
const N = 20_000;
const b0 = performance.now();
for (let i = 0; i < N; i++) sip.parse(normal);
const baselineMs = (performance.now() - b0) / N;

const cpu = cpuPerMessage(seed, udpCases);
const r = await runSipFuzz(seed, udpCases, tcpCases);
const dropped = Object.values(r.stats.dropped).reduce((a, b) => a + (b ?? 0), 0);
const ratio = r.stats.maxMessageMs / baselineMs;
console.log(JSON.stringify({ seed, udpCases, tcpCases, cpuMaxMs: +cpu.maxMs.toFixed(3), cpuWorstCase: cpu.worstCase, cpuMeanUs: +cpu.meanUs.toFixed(2), cpuMaxVsBaseline: +(cpu.maxMs / baselineMs).toFixed(0), seconds: +(r.ms / 1000).toFixed(1), ...r.stats, droppedTotal: dropped, baselineParseUs: +(baselineMs * 1000).toFixed(2), slowestVsBaseline: +ratio.toFixed(0), heapGrowthMb: +r.heapGrowthMb.toFixed(1), unhandled: r.unhandled, aliveUdp: r.aliveUdp, aliveTcp: r.aliveTcp }, null, 2));

const failures: string[] = [];
if (r.unhandled > 0) failures.push(`${r.unhandled} unhandled rejections`);
if (!r.aliveUdp || !r.aliveTcp) failures.push('the stack stopped answering');
// CPU budget per message (GC-free timing): 2 ms. On the socket path a GC pause can land inside
// one datagram, so there the check is that such messages stay rare and none is catastrophic.
if (cpu.maxMs > 2) failures.push(`case ${cpu.worstCase} costs ${cpu.maxMs.toFixed(2)} ms > 2 ms budget`);
// On the socket path the wall clock also counts GC scavenges and, on a shared machine, time the
// process was not scheduled (measured here at load 13 on 2 cores: 201 ms wall for 0.3 ms of CPU),
// so maxMessageMs / slowMessages are reported, not judged.
if (r.heapGrowthMb > 200) failures.push(`heap grew ${r.heapGrowthMb.toFixed(0)} MB`);
if (failures.length) {
  console.error(`FAIL: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('OK');
process.exit(0);

function sipInvite(): string {
  const sdp = 'v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n';
  return [
    'INVITE sip:9+5511987654321@bridge.example.com SIP/2.0',
    'Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK776asdhds;rport',
    'Max-Forwards: 70',
    'To: <sip:9+5511987654321@bridge.example.com>',
    'From: "Agent 1001" <sip:1001@pbx.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710@pbx.example.com',
    'CSeq: 314159 INVITE',
    'Contact: <sip:1001@10.0.0.5:5060>',
    'Content-Type: application/sdp',
    `Content-Length: ${sdp.length}`,
    '',
    sdp,
  ].join('\r\n');
}
