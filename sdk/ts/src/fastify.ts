// The Fastify adapter: a preHandler hook that requires a valid token (and DPoP
// proof), puts its Principal in request.deputy, and answers a refusal the RFC 6750
// way (status, WWW-Authenticate, JSON {error, error_description}).
import type { IncomingMessage } from 'node:http';
import { peerCertificate } from './certificate.js';
import { VerifyError } from './errors.js';
import type { AdapterOptions } from './express.js';
import type { Principal } from './principal.js';
import { authenticate, requestURL, type Verifier } from './verify.js';

/** The part of a Fastify request the hook reads and writes. */
interface FastifyRequestLike {
  raw: IncomingMessage;
  method: string;
  url: string;
  protocol: string;
  host?: string;
  deputy?: Principal | null;
}

/** The part of a Fastify reply the hook uses. */
interface FastifyReplyLike {
  code(status: number): FastifyReplyLike;
  header(name: string, value: string | string[]): FastifyReplyLike;
  send(payload?: unknown): FastifyReplyLike;
}

/**
 * fastifyPreHandler(verifier, { scopes, publicUrl }) is an async preHandler: a
 * request with a valid token goes on with request.deputy set; others are answered
 * 401, 403 or 503 (VerifyError.status). Declare the property once with
 * fastify.decorateRequest('deputy', null) to keep request objects of one shape.
 */
export function fastifyPreHandler(verifier: Verifier, opts: AdapterOptions = {}) {
  const scopes = [...(opts.scopes ?? [])];
  return async (request: FastifyRequestLike, reply: FastifyReplyLike): Promise<void | FastifyReplyLike> => {
    const headers = request.raw.headersDistinct;
    const url = requestURL({
      publicUrl: opts.publicUrl,
      protocol: request.protocol,
      host: request.raw.headers.host,
      path: request.raw.url ?? request.url,
    });
    try {
      request.deputy = await authenticate(verifier, {
        authorization: headers['authorization'], dpop: headers['dpop'], method: request.method, url,
        certificate: peerCertificate(request.raw.socket),
      }, { scopes });
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      for (const [name, value] of Object.entries(e.headers())) reply.header(name, value);
      return reply.code(e.status).header('content-type', 'application/json').header('cache-control', 'no-store')
        .send(JSON.stringify(e.toJSON()));
    }
  };
}
