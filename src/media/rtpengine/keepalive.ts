/**
 * Keep-alive audio for rtpengine's `play media` (see RtpengineSession.pbxSending).
 *
 * The file travels in the ng message as a `blob`. rtpengine-client joins the bencoded message
 * into a JavaScript string before sending it, so a byte above 0x7f would be re-encoded as two
 * UTF-8 bytes and the WAV corrupted ("Could not decode bencode dictionary"). This WAV is built to
 * be 7-bit clean: 8 kHz mono 8-bit unsigned PCM (byte rate 8000 = 0x1f40), one second of 0x7f,
 * i.e. a DC level 1/128 below mid-scale, which Opus's high-pass removes: silence.
 */
import { wavHeader } from '../audio/wav.js';

const SAMPLES = 8000;

function silenceWav(): string {
  const wav = Buffer.concat([wavHeader(SAMPLES, 8000, 8), Buffer.alloc(SAMPLES, 0x7f)]);
  if (wav.some((b) => b > 0x7f)) throw new Error('keep-alive WAV is not 7-bit clean');
  return wav.toString('latin1');
}

/** One second of silence as a WAV, as a string rtpengine-client sends unchanged. */
export const KEEPALIVE_SILENCE = silenceWav();
/** Loops of the one-second file: 24 hours, longer than any hold. */
export const KEEPALIVE_REPEAT_TIMES = 86_400;
