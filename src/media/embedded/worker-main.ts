/**
 * The entry of one embedded media worker thread (started by worker-pool.ts): today's
 * EmbeddedEngine, unchanged, driven over worker-rpc.ts. Its sessions' failures and milestones,
 * a stats snapshot of every session each second (also the heartbeat), and its pino lines go
 * to the main thread.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { MediaError, type MediaSession } from '../types.js';
import { EmbeddedEngine } from './engine.js';
import { toWire, type FromWorker, type Replies, type ToWorker, type WorkerInit, type WorkerRequest } from './worker-rpc.js';

if (!parentPort) throw new Error('worker-main.ts runs as a worker thread (worker-pool.ts starts it)');
const port = parentPort;
const init = workerData as WorkerInit;
const post = (m: FromWorker): void => port.postMessage(m);

// Every line is a JSON string handed to the main thread, which logs it on its own logger.
const log = pino({ level: init.logLevel, base: { mediaWorker: init.index } }, { write: (line: string) => post({ kind: 'log', line }) });
const engine = new EmbeddedEngine({ ...init.engine, logger: log }, log.child({ engine: 'embedded' }));
const sessions = new Map<string, MediaSession>();

function session(callId: string): MediaSession {
  const s = sessions.get(callId);
  if (!s) throw new MediaError(`no session ${callId} in media worker ${init.index}`, 'embedded', 'no session');
  return s;
}

function create(callId: string): null {
  if (sessions.has(callId)) throw new MediaError(`session ${callId} exists already`, 'embedded', 'state');
  const s = engine.createSession(callId);
  sessions.set(callId, s);
  s.onFailure((failure) => post({ kind: 'failure', callId, failure }));
  s.onMilestone?.((milestone) => post({ kind: 'milestone', callId, milestone }));
  return null;
}

async function closeSession(callId: string): Promise<Replies['closeSession']> {
  const s = sessions.get(callId);
  if (!s) return null;
  sessions.delete(callId);
  await s.close();
  return s.mediaStats?.() ?? null;
}

async function run(req: WorkerRequest): Promise<Replies[WorkerRequest['op']]> {
  switch (req.op) {
    case 'create':
      return create(req.callId);
    case 'offerFromWhatsApp':
      return session(req.callId).offerFromWhatsApp(req.sdp);
    case 'answerFromPbx':
      return session(req.callId).answerFromPbx(req.sdp);
    case 'offerFromPbx':
      return session(req.callId).offerFromPbx(req.sdp);
    case 'answerFromWhatsApp':
      return session(req.callId).answerFromWhatsApp(req.sdp);
    case 'offerToWhatsApp':
      return session(req.callId).offerToWhatsApp();
    case 'answerFromPbxToOffer':
      await session(req.callId).answerFromPbxToOffer(req.sdp);
      return null;
    case 'pbxSending':
      await session(req.callId).pbxSending(req.sending);
      return null;
    case 'closeSession':
      return closeSession(req.callId);
    case 'sessionStats':
      return engine.sessionStats(req.callId) ?? null;
    case 'listSessions':
      return engine.listSessions();
    case 'readiness':
      return engine.readiness();
    case 'shutdown':
      sessions.clear();
      await engine.close();
      clearInterval(statsTimer);
      return null;
  }
}

port.on('message', (m: ToWorker) => {
  run(m.req).then(
    (value) => post({ kind: 'res', id: m.id, ok: true, value }),
    (err: unknown) => post({ kind: 'res', id: m.id, ok: false, error: toWire(err) }),
  );
});

const statsTimer = setInterval(() => {
  const stats: Array<[string, NonNullable<Replies['closeSession']>]> = [];
  for (const [id, s] of sessions) {
    const st = s.mediaStats?.();
    if (st) stats.push([id, st]);
  }
  post({ kind: 'stats', stats });
}, init.statsIntervalMs);

post({ kind: 'ready', threadId });
