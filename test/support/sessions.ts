/** The leak check every bridge e2e test ends with: the media engine holds no session. */
import type { RunningApp } from '../../src/app.js';
import type { MediaEngine } from '../../src/media/types.js';
import { waitFor } from './wait.js';

/**
 * Wait (up to `timeoutMs`; teardown of a session is asynchronous) until `media` lists no
 * session; otherwise fail naming the sessions left (for rtpengine: what the daemon lists).
 */
export async function expectNoSessionLeft(media: MediaEngine, timeoutMs = 3000): Promise<void> {
  await waitFor(async () => (await media.listSessions()).length === 0, { timeoutMs, what: 'the media engine to hold no session' }).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${(await media.listSessions()).join(', ')}`);
  });
}

/**
 * End a bridge e2e test: the leak check on `app`'s media engine, then, whatever it found, close
 * the app and stop the peers, so the next test starts clean and a failure stays this test's.
 */
export async function closeAfterLeakCheck(app: RunningApp | undefined, peers: Array<{ stop(): unknown } | undefined>): Promise<void> {
  try {
    if (app) await expectNoSessionLeft(app.media);
  } finally {
    await app?.close();
    for (const p of peers) await p?.stop();
  }
}

/**
 * The afterEach of a bridge e2e test: the log's tail printed when the test failed, then
 * `closeAfterLeakCheck`, then `reset` (the test's records), whatever the check found.
 */
export async function finishBridgeTest(
  failed: boolean,
  logLines: string[],
  app: RunningApp | undefined,
  peers: Array<{ stop(): unknown } | undefined>,
  reset: () => void,
): Promise<void> {
  if (failed) process.stderr.write(logLines.slice(-80).join(''));
  await closeAfterLeakCheck(app, peers).finally(() => {
    logLines.length = 0;
    reset();
  });
}
