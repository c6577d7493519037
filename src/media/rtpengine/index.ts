export { createRtpengineEngine, type RtpengineEngineOptions } from './engine.js';
export * from './flags.js';
export {
  cleanPlainOffer,
  finishWhatsAppAnswer,
  finishWhatsAppOffer,
  iceLiteIntoMedia,
  keepOnlySha256Fingerprint,
  whatsAppAnswerForRtpengine,
  WHATSAPP_PT,
  type PayloadMap,
} from './sdp-post.js';
