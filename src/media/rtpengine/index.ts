export { createRtpengineEngine, type RtpengineEngineOptions } from './engine.js';
export * from './flags.js';
export { cleanPlainOffer, finishWhatsAppAnswer, iceLiteIntoMedia, keepOnlySha256Fingerprint } from './sdp-post.js';
