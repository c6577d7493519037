export { createRtpengineEngine, type RtpengineEngineOptions } from './engine.js';
export * from './flags.js';
export {
  cleanPlainOffer,
  finishWhatsAppAnswer,
  finishWhatsAppOffer,
  iceLiteIntoMedia,
  keepOnlySha256Fingerprint,
  WHATSAPP_PT,
} from './sdp-post.js';
