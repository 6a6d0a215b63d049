// The Express adapter: a middleware that requires a valid token (and DPoP proof)
// on every request, puts its Principal in req.deputy, and answers a refusal the
// RFC 6750 way (status, WWW-Authenticate, JSON {error, error_description}).
// It reads only the Authorization and DPoP headers and the connection's TLS client
// certificate (for certificate-bound tokens); the token is never echoed.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { peerCertificate } from './certificate.js';
import { VerifyError } from './errors.js';
import type { Principal } from './principal.js';
import { authenticate, requestURL, type Verifier } from './verify.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The Principal of the verified token (expressMiddleware). */
      deputy?: Principal;
    }
  }
}

export interface AdapterOptions {
  /** Scopes every request's token must carry (403 insufficient_scope otherwise). */
  scopes?: string[];
  /**
   * This service's external base URL as its clients call it, e.g.
   * "https://gateway.example/ledger" behind a proxy: a DPoP proof's htu must be it
   * followed by the request's path. Default: the request's protocol and Host.
   */
  publicUrl?: string;
}

/** The part of an Express request the middleware reads. */
interface ExpressRequest extends IncomingMessage {
  protocol?: string;
  originalUrl?: string;
  deputy?: Principal;
}

type Next = (err?: unknown) => void;

/** writeRefusal is the one place a VerifyError becomes an HTTP answer (Node's ServerResponse). */
export function writeRefusal(res: ServerResponse, err: VerifyError): void {
  for (const [name, value] of Object.entries(err.headers())) res.setHeader(name, value);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.statusCode = err.status;
  res.end(JSON.stringify(err.toJSON()));
}

/**
 * expressMiddleware(verifier, { scopes, publicUrl }) guards the routes after it:
 * a request with a valid token goes on with req.deputy set; others are answered
 * 401, 403 or 503 (VerifyError.status). Other errors go to next(err).
 */
export function expressMiddleware(verifier: Verifier, opts: AdapterOptions = {}) {
  const scopes = [...(opts.scopes ?? [])];
  return (req: ExpressRequest, res: ServerResponse, next: Next): void => {
    const headers = req.headersDistinct;
    const url = requestURL({
      publicUrl: opts.publicUrl,
      protocol: req.protocol ?? ((req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'),
      host: req.headers.host,
      path: req.originalUrl ?? req.url ?? '/',
    });
    authenticate(verifier, {
      authorization: headers['authorization'], dpop: headers['dpop'], method: req.method ?? 'GET', url,
      certificate: peerCertificate(req.socket),
    }, { scopes })
      .then((p) => {
        req.deputy = p;
        next();
      }, (e: unknown) => {
        if (e instanceof VerifyError) writeRefusal(res, e);
        else next(e);
      });
  };
}
