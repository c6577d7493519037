/** WhatsApp's SDP rules now live in the WhatsApp media profile; this path stays for importers. */
export { checkWhatsAppAnswer, checkWhatsAppOffer, sameSdpIgnoringVersion } from './whatsapp-profile.js';
