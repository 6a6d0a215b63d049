// deputy's SDK for Node services: exchange a token for the next hop (RFC 8693),
// DPoP proofs (RFC 9449) and call reports to deputy's audit trail.
export { createExchanger, ExchangeError } from './exchange.js';
export type { Exchanger, ExchangerConfig, ExchangedToken, ExchangeOptions, FetchLike } from './exchange.js';
export { createProof, dpopHeaders, dpopKey, generateDPoPKey, isNonceChallenge } from './dpop.js';
export type { DPoPKey, DPoPKeyPair, DPoPAlgorithm, ProofOptions } from './dpop.js';
export {
  createReporter, DropError, DeliveryError, RejectedError, traceIdOf,
  DROP_QUEUE_FULL, DROP_NO_JTI, DROP_INVALID_CALL,
} from './report.js';
export type { Reporter, ReporterConfig, ReportRequestOptions, Call, ReportStats, Rejection } from './report.js';
