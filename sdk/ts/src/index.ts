// deputy's SDK for Node services: verify deputy's tokens (RFC 9068; bound by DPoP,
// RFC 9449, or to a TLS client certificate, RFC 8705)
// with framework-neutral, Express and Fastify entry points; exchange a token for
// the next hop (RFC 8693); DPoP proofs; call reports to deputy's audit trail;
// transaction tokens (obtain, verify, forward).
export {
  createVerifier, authenticate, parseAuthorization, requestURL, keysMaxAge, TOKEN_ALGORITHMS, MAX_TOKEN_BYTES,
} from './verify.js';
export type {
  Verifier, VerifierOptions, VerifyOptions, DPoPPresentation, RequestCredentials, AuthenticateOptions,
} from './verify.js';
export { VerifyError, DPOP_ALGORITHMS } from './errors.js';
export type { VerifyErrorCode, VerifyErrorOptions } from './errors.js';
export { peerCertificate } from './certificate.js';
export { createNonces, DEFAULT_NONCE_LIFETIME } from './nonces.js';
export type { NonceSource } from './nonces.js';
export type { PeerCertificateSource } from './certificate.js';
export { hasScope } from './principal.js';
export type { Principal, Actor, Confirmation } from './principal.js';
export { accessTokenHash, normalizeURL } from './dpop-check.js';
export { expressMiddleware, writeRefusal } from './express.js';
export type { AdapterOptions } from './express.js';
export { fastifyPreHandler } from './fastify.js';

export { createExchanger, ExchangeError } from './exchange.js';
export type { Exchanger, ExchangerConfig, ExchangedToken, ExchangeOptions, ExchangeFetchInit, FetchLike } from './exchange.js';
export { traceHeaders } from './trace.js';
export type { TraceOptions } from './trace.js';
export { createProof, dpopHeaders, dpopKey, generateDPoPKey, isNonceChallenge } from './dpop.js';
export type { DPoPKey, DPoPKeyPair, DPoPAlgorithm, ProofOptions } from './dpop.js';
export {
  createReporter, DropError, DeliveryError, RejectedError, traceIdOf,
  DROP_QUEUE_FULL, DROP_NO_JTI, DROP_INVALID_CALL,
} from './report.js';
export type { Reporter, ReporterConfig, ReportRequestOptions, Call, ReportStats, Rejection } from './report.js';

export {
  createTxnVerifier, authenticateTxn, txnErrorResponse, expressTxn, fastifyTxn, obtainTxnToken, forwardTxn,
  TxnError, TXN_TOKEN_HEADER, TOKEN_TYPE_TXN_TOKEN, TXN_TOKEN_TYPE, DEFAULT_TXN_CLOCK_TOLERANCE,
} from './txn.js';
export type {
  TxnVerifier, TxnConfig, TxnVerifierConfig, TxnPrincipal, TxnErrorResponse, TxnClientConfig, TxnRequest, TxnToken,
  RequestContext as TxnRequestContext,
} from './txn.js';
