/** Moved: the one PBX-side endpoint (PCMU/PCMA/G.722) is `RtpEndpoint` in ./rtp-endpoint.ts. */
export { RtpEndpoint as CodecRtpEndpoint, type EndpointCodec, type ReceivedHeader } from './rtp-endpoint.js';
