/**
 * Public face of msrp-relay: the relay, the client endpoint, the load tester, the wire codec (URIs,
 * header values, parser, serializer), the CPIM/IMDN codecs and the error type.
 */
export * from './errors.js';
export * from './constants.js';
export * from './msrp/message.js';
export * from './msrp/uri.js';
export * from './msrp/headers.js';
export * from './msrp/digest.js';
export { MsrpParser, type ParserHandler, type ParserOptions, type ErrorContext } from './msrp/parser.js';
export * from './msrp/serializer.js';
export { FrameCollector, parseFrames, type CollectedError } from './msrp/frame-collector.js';
export { createRelay, Relay, type RelayOptions, type RelayAddress, type ListenSpec } from './relay/relay.js';
export type { RelayCounters, RelayStats } from './relay/relay.js';
export type { TlsCertificateInfo, TlsCredentials } from './relay/listeners.js';
export { FileUserStore, type UserStore } from './relay/users.js';
export type { Logger } from './relay/logger.js';
export {
  MsrpEndpoint,
  type EndpointOptions,
  type ReceivedMessage,
  type SendOptions,
} from './client/endpoint.js';
export { parseCpimHead, formatCpim, type CpimHead } from './reports/cpim.js';
export { parseImdn, buildDeliveryReport, detectReportRequest, type ReportRequest } from './reports/imdn.js';
export { runLoad } from './load/runner.js';
