// The report side of the SDK, the mirror of Go's sdk/report: a service puts its own
// handling of a request into deputy's audit trail ("ledger read account/42 for
// alice via payments"), linked to the token it received by that token's jti.
//
// Wire contract (deputy's call_report_endpoint, discovered from the RFC 8414
// metadata; client_secret_basic, RFC 6749 §2.3.1): POST application/json
//
//   {"calls":[{"token_jti":"…","action":"read","resource":"account/42","outcome":"ok",
//              "time":"2026-11-25T22:00:00.123000Z","detail":"…","trace_id":"…"}]}
//
// answered 200 {"accepted":N,"rejected":[{"index":i,"error":"…"}]}; rejected calls
// are refused for good. 4xx other than 408 and 429 refuses the whole report for
// good; 5xx, 408, 429 and transport failures are retried, waiting 100 ms, then twice
// as long each time up to 5 s, at most maxRetries times, while later reports wait.
//
// report() never blocks and never throws: calls wait in a bounded queue and a full
// queue drops them, counted. One sender sends batches, in order.
import { formEncode, httpURL, readLimited, WELL_KNOWN } from './exchange.js';
import type { FetchLike } from './exchange.js';
import { traceIdOf } from './trace.js';
import { failing, refuse } from './options.js';

export { traceIdOf } from './trace.js';

/** Defaults and bounds of ReporterConfig, as in Go's sdk/report. */
export const DEFAULT_REPORT_TIMEOUT = 10_000;
export const DEFAULT_BATCH_SIZE = 100;
export const MAX_BATCH_SIZE = 500; // calls deputy accepts in one report
export const DEFAULT_FLUSH_INTERVAL = 1_000;
export const DEFAULT_QUEUE_SIZE = 10_000;
export const DEFAULT_MAX_RETRIES = 5;

const MAX_BODY = 1 << 20; // bytes of one report
const MIN_BACKOFF = 100;
const MAX_BACKOFF = 5_000;
const MAX_TOKEN = 64 << 10;

export interface ReporterConfig {
  /** deputy's issuer URL; unless endpoint is set, call_report_endpoint is discovered from its RFC 8414 metadata before the first report. */
  issuer?: string;
  /** deputy's call report endpoint; when set, no discovery is made. */
  endpoint?: string;
  /** This service's client credentials (client_secret_basic). */
  clientId: string;
  clientSecret: string;
  /** The fetch used for deputy; default globalThis.fetch. */
  fetch?: FetchLike;
  /** Bound of one request, in ms; default 10 s. */
  timeout?: number;
  /** Most calls in one report; default 100, at most 500. A batch is also split so that no report exceeds 1 MiB. */
  batchSize?: number;
  /** A partial batch is sent this many ms after its first call was queued; default 1 s. */
  flushInterval?: number;
  /** Bound of the calls waiting to be sent; default 10,000. A full queue drops calls, counted. */
  queueSize?: number;
  /** Retries of a report after a 5xx, 408 or 429 answer or a transport failure; default 5, 0 for none. */
  maxRetries?: number;
  /**
   * Told of calls lost (DeliveryError), refused one by one (RejectedError) or
   * dropped before being queued (DropError, coalesced). It should return quickly;
   * what it throws is ignored.
   */
  onError?: (err: Error) => void;
}

/** One call a service handled, named by the jti of the access token it received. */
export interface Call {
  /** Required: the jti claim of the access token the service received. */
  tokenJti: string;
  /** Required: what the service did, e.g. "read". */
  action: string;
  resource?: string;
  outcome?: string;
  detail?: string;
  /** When it was handled; default the time of report(). */
  time?: Date;
  /** The W3C trace id (32 lowercase hex digits) of the request the service handled. */
  traceId?: string;
}

/** What became of the calls given to a Reporter; after flush() or close(), the four add up to them all. */
export interface ReportStats {
  sent: number;
  rejected: number;
  dropped: number;
  failed: number;
}

export const DROP_QUEUE_FULL = 'report: queue full';
export const DROP_NO_JTI = 'report: the access token has no readable jti claim';
export const DROP_INVALID_CALL = 'report: call without token_jti or action';

/** count calls were dropped before being queued, for reason (a DROP_ constant). */
export class DropError extends Error {
  constructor(readonly reason: string, readonly count: number) {
    super(`${reason}: ${count} call(s) dropped`);
    this.name = 'DropError';
  }
}

/**
 * A report lost with its calls: deputy refused it for good (a 4xx; error and
 * errorDescription are its OAuth error when it gave one), retries ran out, or
 * close() gave up on it.
 */
export class DeliveryError extends Error {
  readonly calls: Call[];
  readonly attempts: number;
  readonly status: number | undefined;
  readonly error: string | undefined;
  readonly errorDescription: string | undefined;
  constructor(o: { calls: Call[]; attempts: number; status?: number; error?: string; errorDescription?: string; why: string; cause?: unknown }) {
    super(`report: ${o.calls.length} call(s) lost after ${o.attempts} attempt(s): ${o.why}`, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'DeliveryError';
    this.calls = o.calls;
    this.attempts = o.attempts;
    this.status = o.status;
    this.error = o.error;
    this.errorDescription = o.errorDescription;
  }
}

export interface Rejection {
  call: Call;
  reason: string;
}

/** Calls of an accepted report that deputy refused one by one (or too large to send). Not retried. */
export class RejectedError extends Error {
  constructor(readonly rejections: Rejection[]) {
    const first = rejections[0];
    super(first ? `report: ${rejections.length} call(s) rejected; first, ${first.call.action} on ${JSON.stringify(first.call.tokenJti)}: ${first.reason}` : 'report: no call rejected');
    this.name = 'RejectedError';
  }
}

/** What reportRequest may add to a call. */
export interface ReportRequestOptions {
  detail?: string;
  time?: Date;
  /** The W3C trace id of the request handled; else the one of traceparent. */
  traceId?: string;
  /** The request's traceparent header (W3C Trace Context), whose trace id the call keeps. */
  traceparent?: string | null;
}

export interface Reporter {
  /** Queues call and returns at once; never throws. An invalid call, a full queue or a closed reporter drops it, counted. */
  report(call: Call): void;
  /**
   * Reports a call on accessToken, the token of the request being served, taking
   * its jti from the JWT payload WITHOUT verifying it (the verifier already has).
   */
  reportRequest(accessToken: string, action: string, resource?: string, outcome?: string, more?: ReportRequestOptions): void;
  /** Sends every call queued so far and resolves when deputy has answered for them (or they were given up). */
  flush(): Promise<void>;
  /** Stops taking calls, sends what is queued and resolves when done; an aborted signal gives up on what is left (counted failed). */
  close(options?: { signal?: AbortSignal }): Promise<void>;
  stats(): ReportStats;
}


/** Whether an answer with status may succeed if the request is repeated. */
function retryable(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/**
 * unsafeJti returns the jti claim of raw, a JWS compact serialisation, by decoding
 * its payload WITHOUT verifying the signature; undefined when it has none.
 */
export function unsafeJti(raw: string): string | undefined {
  if (typeof raw !== 'string' || raw.length > MAX_TOKEN) return undefined;
  const parts = raw.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]*$/.test(parts[1]!)) return undefined;
  try {
    const c: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    const jti = (c as { jti?: unknown } | null)?.jti;
    return typeof jti === 'string' && jti !== '' ? jti : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 3339 in UTC with microseconds, as Go's sdk/report writes it. */
function wireTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function wireCall(c: Call): string {
  const w: Record<string, string> = { token_jti: c.tokenJti, action: c.action };
  if (c.resource) w.resource = c.resource;
  if (c.outcome) w.outcome = c.outcome;
  if (c.time && !Number.isNaN(c.time.getTime())) w.time = wireTime(c.time);
  if (c.detail) w.detail = c.detail;
  if (c.traceId) w.trace_id = c.traceId;
  return JSON.stringify(w);
}

interface Outgoing {
  calls: Call[];
  body: string;
}

// encodeReports encodes calls as reports of at most MAX_BATCH_SIZE calls and
// MAX_BODY bytes each, in order; a call that alone would exceed MAX_BODY is left out.
function encodeReports(calls: Call[]): { reports: Outgoing[]; tooLarge: Rejection[] } {
  const open = '{"calls":[';
  const end = ']}';
  const reports: Outgoing[] = [];
  const tooLarge: Rejection[] = [];
  let cur: Call[] = [];
  let parts: string[] = [];
  let size = 0;
  const finish = () => {
    if (cur.length === 0) return;
    reports.push({ calls: cur, body: open + parts.join(',') + end });
    cur = [];
    parts = [];
    size = 0;
  };
  for (const c of calls) {
    const b = wireCall(c);
    const n = Buffer.byteLength(b);
    if (open.length + n + end.length > MAX_BODY) {
      tooLarge.push({ call: c, reason: `call too large for a report of at most ${MAX_BODY} bytes` });
      continue;
    }
    if (cur.length > 0 && (open.length + size + cur.length + n + end.length > MAX_BODY || cur.length >= MAX_BATCH_SIZE)) finish();
    cur.push(c);
    parts.push(b);
    size += n;
  }
  finish();
  return { reports, tooLarge };
}

/** Returns a Reporter for config. It makes no request until the first batch is due. */
export function createReporter(config: ReporterConfig): Reporter {
  refuse(failing('report: config: ', [
    [!config.clientId, 'clientId is required'],
    [!config.clientSecret, 'clientSecret is required'],
    [!config.issuer && !config.endpoint, 'issuer or endpoint is required'],
    [!!config.issuer && !httpURL(config.issuer), 'issuer must be an absolute http or https URL'],
    [!!config.endpoint && !httpURL(config.endpoint), 'endpoint must be an absolute http or https URL'],
    [config.batchSize !== undefined && !(Number.isInteger(config.batchSize) && config.batchSize >= 1 && config.batchSize <= MAX_BATCH_SIZE), 'batchSize must be 1 to 500'],
    [config.flushInterval !== undefined && !(config.flushInterval >= 0), 'flushInterval must not be negative'],
    [config.queueSize !== undefined && !(Number.isInteger(config.queueSize) && config.queueSize >= 1), 'queueSize must be at least 1'],
    [config.maxRetries !== undefined && !(config.maxRetries >= 0), 'maxRetries must not be negative'],
    [config.timeout !== undefined && !(config.timeout > 0), 'timeout must be positive'],
  ]));

  const doFetch: FetchLike = config.fetch ?? ((i, init) => globalThis.fetch(i, init));
  const authorization = 'Basic ' + Buffer.from(`${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`).toString('base64');
  const issuer = config.issuer;
  const batchSize = config.batchSize ?? DEFAULT_BATCH_SIZE;
  const flushInterval = config.flushInterval ?? DEFAULT_FLUSH_INTERVAL;
  const queueSize = config.queueSize ?? DEFAULT_QUEUE_SIZE;
  const maxRetries = config.maxRetries ?? DEFAULT_MAX_RETRIES;
  const timeout = config.timeout ?? DEFAULT_REPORT_TIMEOUT;
  let endpoint = config.endpoint;

  const stats: ReportStats = { sent: 0, rejected: 0, dropped: 0, failed: 0 };
  const untold = new Map<string, number>(); // drops not yet told to onError
  const queue: Call[] = [];
  let due = 0; // calls at the head of queue whose batch is due (timer, flush, close)
  let taken = 0; // calls taken from queue so far
  let settled = 0; // of those, calls delivered, rejected or given up
  const waiters: { target: number; done: () => void }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let closed = false;
  let closing: Promise<void> | undefined;
  const stop = new AbortController(); // ends waits and requests when close gives up

  function tell(err: Error): void {
    if (!config.onError) return;
    try {
      config.onError(err);
    } catch {
      // the handler's failure is not the reporter's
    }
  }

  function tellDrops(): void {
    for (const [reason, n] of untold) tell(new DropError(reason, n));
    untold.clear();
  }

  function drop(reason: string): void {
    stats.dropped++;
    untold.set(reason, (untold.get(reason) ?? 0) + 1);
    if (!running) queueMicrotask(() => { if (!running) tellDrops(); });
  }

  function report(call: Call): void {
    try {
      if (!call || typeof call.tokenJti !== 'string' || !call.tokenJti || typeof call.action !== 'string' || !call.action) {
        drop(DROP_INVALID_CALL);
        return;
      }
      if (closed) {
        stats.dropped++; // the sender is going: nobody to tell, as in Go
        return;
      }
      if (queue.length >= queueSize) {
        drop(DROP_QUEUE_FULL);
        return;
      }
      queue.push({ ...call, time: call.time ?? new Date() });
      if (queue.length >= batchSize) kick();
      else if (!timer) {
        timer = setTimeout(() => { timer = undefined; due = queue.length; kick(); }, flushInterval);
        timer.unref(); // an idle reporter keeps no process alive; close() sends what is left
      }
    } catch {
      // never on the request path
    }
  }

  function reportRequest(accessToken: string, action: string, resource?: string, outcome?: string, more?: ReportRequestOptions): void {
    try {
      const jti = unsafeJti(accessToken);
      if (!jti) {
        drop(DROP_NO_JTI);
        return;
      }
      const traceId = more?.traceId ?? traceIdOf(more?.traceparent);
      report({ tokenJti: jti, action, resource, outcome, detail: more?.detail, time: more?.time, traceId });
    } catch {
      // never on the request path
    }
  }

  function kick(): void {
    if (running) return;
    running = true;
    void pump();
  }

  // pump sends full batches, and partial ones once due, one report at a time.
  async function pump(): Promise<void> {
    try {
      await pumpBatches();
    } finally {
      running = false; // at once, so that a report() right after starts another
    }
  }

  async function pumpBatches(): Promise<void> {
    for (;;) {
      while (queue.length >= batchSize || due > 0) {
        const n = Math.min(batchSize, queue.length);
        const batch = queue.splice(0, n);
        due = Math.max(0, due - n);
        taken += n;
        if (queue.length === 0 && timer) { clearTimeout(timer); timer = undefined; }
        try {
          await deliver(batch);
        } catch (e) {
          stats.failed += batch.length; // no path throws; kept so a bug cannot stall flush
          tell(e as Error);
        }
        settled += n;
        release();
      }
      tellDrops();
      release();
      if (queue.length >= batchSize || due > 0) continue; // queued while telling
      if (queue.length > 0 && !timer && !closed) {
        timer = setTimeout(() => { timer = undefined; due = queue.length; kick(); }, flushInterval);
        timer.unref();
      }
      return;
    }
  }

  function release(): void {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (settled >= waiters[i]!.target) {
        waiters[i]!.done();
        waiters.splice(i, 1);
      }
    }
  }

  async function deliver(calls: Call[]): Promise<void> {
    const { reports, tooLarge } = encodeReports(calls);
    if (tooLarge.length > 0) {
      stats.rejected += tooLarge.length;
      tell(new RejectedError(tooLarge));
    }
    for (const o of reports) await send(o);
  }

  function sleep(ms: number): Promise<boolean> {
    return new Promise((ok) => {
      if (stop.signal.aborted) return ok(false);
      const t = setTimeout(() => { stop.signal.removeEventListener('abort', onAbort); ok(true); }, ms);
      const onAbort = () => { clearTimeout(t); ok(false); };
      stop.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  interface Attempt { ok: boolean; status?: number; retry: boolean; why: string; error?: string; errorDescription?: string; cause?: unknown }

  async function send(o: Outgoing): Promise<void> {
    let wait = MIN_BACKOFF;
    let attempts = 0;
    let last: Attempt | undefined;
    while (!stop.signal.aborted) {
      attempts++;
      last = await attempt(o);
      if (last.ok) return;
      if (!last.retry || attempts > maxRetries || !(await sleep(wait))) break;
      wait = Math.min(2 * wait, MAX_BACKOFF);
    }
    let why = last?.why ?? 'the reporter was closed before the report was sent';
    if (last && stop.signal.aborted) why = `the reporter was closed before the report was delivered (last attempt: ${why})`;
    stats.failed += o.calls.length;
    tell(new DeliveryError({ calls: o.calls, attempts, status: last?.status, error: last?.error, errorDescription: last?.errorDescription, why, cause: last?.cause }));
  }

  function signal(): AbortSignal {
    return AbortSignal.any([stop.signal, AbortSignal.timeout(timeout)]);
  }

  async function callEndpoint(): Promise<{ url?: string; fail?: Attempt }> {
    if (endpoint) return { url: endpoint };
    const where = issuer!.replace(/\/$/, '') + WELL_KNOWN;
    try {
      const res = await doFetch(where, { headers: { accept: 'application/json' }, signal: signal() });
      const body = await readLimited(res, MAX_BODY);
      if (res.status !== 200) return { fail: { ok: false, status: res.status, retry: retryable(res.status), why: `discovery: ${where} answered ${res.status}` } };
      const md = JSON.parse(body) as { issuer?: unknown; call_report_endpoint?: unknown };
      if (md.issuer !== issuer) return { fail: { ok: false, retry: false, why: `discovery: ${where} names issuer ${JSON.stringify(md.issuer)}, want ${JSON.stringify(issuer)}` } };
      if (typeof md.call_report_endpoint !== 'string' || !httpURL(md.call_report_endpoint)) {
        return { fail: { ok: false, retry: false, why: `discovery: ${where} has no usable call_report_endpoint (${JSON.stringify(md.call_report_endpoint)})` } };
      }
      endpoint = md.call_report_endpoint;
      return { url: endpoint };
    } catch (e) {
      const syntax = e instanceof SyntaxError;
      return { fail: { ok: false, retry: !syntax, why: `discovery: ${where}: ${(e as Error).message}`, cause: e } };
    }
  }

  async function attempt(o: Outgoing): Promise<Attempt> {
    const ep = await callEndpoint();
    if (ep.fail) return ep.fail;
    let res: Response;
    let body: string;
    try {
      res = await doFetch(ep.url!, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', authorization },
        body: o.body,
        signal: signal(),
      });
      body = await readLimited(res, MAX_BODY);
    } catch (e) {
      return { ok: false, retry: true, why: `sending to the call report endpoint: ${(e as Error).message}`, cause: e };
    }
    if (res.status >= 200 && res.status < 300) {
      accepted(o, body);
      return { ok: true, status: res.status, retry: false, why: '' };
    }
    let error: string | undefined;
    let errorDescription: string | undefined;
    try {
      const j = JSON.parse(body) as { error?: unknown; error_description?: unknown };
      if (typeof j.error === 'string' && j.error) error = j.error;
      if (typeof j.error_description === 'string') errorDescription = j.error_description;
    } catch {
      // no OAuth error in the body
    }
    const why = error ? `${error}${errorDescription ? ': ' + errorDescription : ''}` : `call report endpoint answered ${res.status}`;
    return { ok: false, status: res.status, retry: retryable(res.status), why, error, errorDescription };
  }

  // accepted accounts for a report deputy took: its calls are sent but those it
  // rejected by index. An unreadable answer counts all as sent, and is told.
  function accepted(o: Outgoing, body: string): void {
    let res: { rejected?: unknown };
    try {
      res = JSON.parse(body) as { rejected?: unknown };
      if (typeof res !== 'object' || res === null) throw new Error('not a JSON object');
    } catch (e) {
      stats.sent += o.calls.length;
      tell(new Error(`report: deputy accepted a report of ${o.calls.length} call(s), but its answer is unreadable: ${(e as Error).message}`));
      return;
    }
    const seen = new Set<number>();
    const rejected: Rejection[] = [];
    for (const x of Array.isArray(res.rejected) ? res.rejected : []) {
      const i = (x as { index?: unknown })?.index;
      if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= o.calls.length || seen.has(i)) continue;
      seen.add(i);
      const reason = (x as { error?: unknown }).error;
      rejected.push({ call: o.calls[i]!, reason: typeof reason === 'string' ? reason : '' });
    }
    stats.sent += o.calls.length - rejected.length;
    if (rejected.length > 0) {
      stats.rejected += rejected.length;
      tell(new RejectedError(rejected));
    }
  }

  function flush(): Promise<void> {
    const target = taken + queue.length;
    due = queue.length;
    const p = new Promise<void>((done) => waiters.push({ target, done }));
    release();
    if (due > 0) kick();
    else if (!running) tellDrops();
    return p;
  }

  function close(options?: { signal?: AbortSignal }): Promise<void> {
    if (!closing) {
      closed = true;
      if (timer) { clearTimeout(timer); timer = undefined; }
      closing = flush();
    }
    const s = options?.signal;
    if (s) {
      const giveUp = () => stop.abort(new Error('report: reporter closed'));
      if (s.aborted) giveUp();
      else {
        s.addEventListener('abort', giveUp, { once: true });
        void closing.then(() => s.removeEventListener('abort', giveUp));
      }
    }
    return closing;
  }

  return { report, reportRequest, flush, close, stats: () => ({ ...stats }) };
}
