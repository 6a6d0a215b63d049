// W3C Trace Context (https://www.w3.org/TR/trace-context/) without OpenTelemetry:
// the one parser of traceparent headers in this SDK. The report side reads the
// trace id of a request's traceparent (traceIdOf); the exchange side carries a
// request's traceparent and tracestate on to deputy's token endpoint and to the
// next service (traceHeaders), as Go's sdk/internal/traceprop does through the
// OpenTelemetry API. deputy's audit events record the trace id they carry.

/** The header names of W3C Trace Context §3.2 and §3.3. */
export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

/** W3C Trace Context §3.3.1.1: at most 512 characters of tracestate are propagated. */
const MAX_TRACESTATE = 512;

interface Traceparent {
  version: string;
  traceId: string;
  parentId: string;
  flags: string;
}

// parseTraceparent reads a traceparent header (§3.2.2) as OpenTelemetry's Go
// propagator (which deputy and the Go SDK use) reads it, so that a trace id one
// side keeps, the other keeps too: version, trace-id, parent-id and trace-flags
// in lower-case hex; version ff is invalid; a version-00 header has nothing after
// the flags and no flag but sampled (01) and random (02); a later version may
// carry more after its flags (§3.2.4), which is not read; all-zero ids are
// invalid. undefined when it is not valid.
function parseTraceparent(traceparent: string | null | undefined): Traceparent | undefined {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(traceparent?.trim() ?? '');
  if (!m || m[1] === 'ff' || /^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined;
  if (m[1] === '00' && (m[5] !== undefined || parseInt(m[4]!, 16) > 0x03)) return undefined;
  return { version: m[1]!, traceId: m[2]!, parentId: m[3]!, flags: m[4]! };
}

/** The trace id of a W3C traceparent header, or undefined when it has none valid (see traceHeaders). */
export function traceIdOf(traceparent: string | null | undefined): string | undefined {
  return parseTraceparent(traceparent)?.traceId;
}

/**
 * The W3C Trace Context headers to send for a request's traceparent and
 * tracestate: { traceparent, tracestate? } when traceparent is valid, sent as
 * version 00 with the flags this version defines (sampled, random), as
 * OpenTelemetry writes it; tracestate only with it and only when it is at most
 * 512 printable ASCII characters; {} otherwise — an invalid traceparent is not
 * sent, and the receiver starts a trace of its own (§3.2.2.6).
 */
export function traceHeaders(traceparent: string | null | undefined, tracestate?: string | null): Record<string, string> {
  const p = parseTraceparent(traceparent);
  if (p === undefined) return {};
  const flags = (parseInt(p.flags, 16) & 0x03).toString(16).padStart(2, '0');
  const out: Record<string, string> = { [TRACEPARENT_HEADER]: `00-${p.traceId}-${p.parentId}-${flags}` };
  const state = tracestate?.trim() ?? '';
  if (state !== '' && state.length <= MAX_TRACESTATE && /^[\x20-\x7e]*$/.test(state)) out[TRACESTATE_HEADER] = state;
  return out;
}

/** Request options that carry a request's trace on (W3C Trace Context). */
export interface TraceOptions {
  /**
   * The traceparent header of the request being handled; sent on only when it is
   * a valid version-00 one (see traceHeaders). Node's req.headers.traceparent or
   * a fetch Headers' get('traceparent') can be passed as they are.
   */
  traceparent?: string | null;
  /** Its tracestate header, sent only with a valid traceparent. */
  tracestate?: string | null;
}
