/**
 * One error model for the whole service: every failure that reaches a job, the API or the CLI is a
 * GabeError with a stable code, an HTTP status and a `retryable` flag (undici's errors and BullMQ's
 * "unrecoverable" error are the models). Codes are part of the public contract: never rename one.
 */

import { ErrorCodes, type ErrorKind } from './error-codes.js';

export type ErrorCode = `GABE_ERR_${ErrorKind}`;

export interface GabeErrorOptions {
  cause?: unknown;
  /** Overrides the kind's default (e.g. an HTTP 503 from an origin is retryable, a 404 is not). */
  retryable?: boolean;
  /** Overrides the kind's default HTTP status for API answers. */
  httpStatus?: number;
  /** Extra facts for logs and API bodies (e.g. the field that failed validation). */
  details?: Record<string, unknown>;
  /** Seconds a client should wait before trying again (503/429 answers). */
  retryAfter?: number;
}

export class GabeError extends Error {
  override readonly name = 'GabeError';
  readonly kind: ErrorKind;
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfter: number | undefined;

  constructor(kind: ErrorKind, message: string, options: GabeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.code = `GABE_ERR_${kind}`;
    this.httpStatus = options.httpStatus ?? ErrorCodes[kind].status;
    this.retryable = options.retryable ?? ErrorCodes[kind].retryable;
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }
}

/**
 * An origin answered with a status Gabe does not take. The status is a field, not a `details` entry,
 * so the callers that branch on it (416 on a resume, 401/403/404/410 of an expired signed URL, 429/503
 * throttling) are type-checked.
 */
export class HttpStatusError extends GabeError {
  readonly status: number;
  readonly url: string;

  constructor(status: number, url: string, options: { retryable: boolean; retryAfter?: number }) {
    super('HTTP_STATUS', `HTTP ${status} from ${url}`, { ...options, details: { status, url } });
    this.status = status;
    this.url = url;
  }
}

/** The origin's status behind an error: an HttpStatusError's own, or the one a KEY/SEGMENT error wraps. */
export function originStatus(err: unknown): number | undefined {
  for (let e: unknown = err; e instanceof GabeError; e = e.cause) {
    if (e instanceof HttpStatusError) return e.status;
  }
  return undefined;
}

/**
 * The resource changed under a download (other size or validators, Range no longer honoured): the
 * pieces on disk may belong to another version, so the download starts over from nothing.
 */
export class FileChangedError extends GabeError {
  constructor(why: string) {
    super('INTEGRITY', `the file changed on the server during the download: ${why}`);
  }
}

/** ffmpeg or ffprobe ended without doing its work; `stderr` keeps the end of what it said. */
export class FfmpegExitError extends GabeError {
  readonly stderr: string;

  constructor(message: string, stderr: string) {
    super('FFMPEG', message, { details: { stderr } });
    this.stderr = stderr;
  }
}

/**
 * ffmpeg could not fit the moov into the space reserved for it in front (more samples than the
 * estimate allowed for): the merge is worth running again without a reservation. Same code and message
 * as any other ffmpeg exit.
 */
export class MoovReserveError extends FfmpegExitError {}

export function isGabeError(err: unknown, kind?: ErrorKind): err is GabeError {
  return err instanceof GabeError && (kind === undefined || err.kind === kind);
}

/** True for the error an AbortSignal raises (ours, undici's, or a stream's). */
export function isAbortError(err: unknown): boolean {
  if (isGabeError(err, 'CANCELLED')) return true;
  const e = err as { name?: string; code?: string } | null;
  return e?.name === 'AbortError' || e?.code === 'ABORT_ERR' || e?.code === 'UND_ERR_ABORTED';
}

const SYSTEM_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/**
 * Every transport's timeouts are ETIMEDOUT (net/deadlines.ts): undici's own timeout errors are turned
 * into deadlines.ts's before they leave the transport (undici-limits.ts undiciLimitError).
 */
const TIMEOUT_CODES = new Set(['ETIMEDOUT']);

/**
 * undici's errors for a response that breaks HTTP/1.1. Its parser's own are HTTPParserError, meant to
 * carry llhttp's HPE_* code like Node's, but undici 7 looks the code up by number in a table keyed by
 * name, so the code is undefined: the name tells. Its SocketError "bad response" is a response nobody asked for or a 100 Continue
 * to a request that did not expect one; "bad upgrade" a 101 to a request that did not ask to upgrade.
 */
const UNDICI_PROTOCOL_CODES = new Set(['UND_ERR_HEADERS_OVERFLOW']);
const UNDICI_PROTOCOL_SOCKET_MESSAGES = new Set(['bad response', 'bad upgrade']);

/** Our own refusals in the HTTP clients (net/deadlines.ts protocolError) that llhttp has no code for. */
export const PROTOCOL_ERROR_CODE = 'ERR_GABE_HTTP_PROTOCOL';

function isProtocolError(code: string, name: string | undefined, message: string): boolean {
  return (
    code.startsWith('HPE_') ||
    name === 'HTTPParserError' ||
    code === PROTOCOL_ERROR_CODE ||
    UNDICI_PROTOCOL_CODES.has(code) ||
    (code === 'UND_ERR_SOCKET' && UNDICI_PROTOCOL_SOCKET_MESSAGES.has(message))
  );
}

/** OpenSSL's verification failures, as Node reports them on a TLS socket. */
const TLS_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

/**
 * Maps anything thrown (system errors, undici errors, our own) to a GabeError so that every layer above
 * the network speaks one language. Unknown errors become INTERNAL and are never retried.
 */
export function toGabeError(err: unknown): GabeError {
  if (err instanceof GabeError) return err;
  const e = err as { code?: string; message?: string; name?: string } | null;
  const code = e?.code ?? '';
  const message = e?.message ?? String(err);
  if (isAbortError(err)) return new GabeError('CANCELLED', 'the job was cancelled', { cause: err });
  if (code === 'ENOSPC') return new GabeError('DISK_FULL', 'no space left on the device', { cause: err });
  if (TIMEOUT_CODES.has(code)) return new GabeError('TIMEOUT', `timed out: ${message}`, { cause: err });
  if (isProtocolError(code, e?.name, message)) {
    return new GabeError('PROTOCOL', `the origin broke HTTP/1.1 (${code || e?.name}): ${message}`, {
      cause: err,
    });
  }
  if (TLS_CERT_CODES.has(code) || code.startsWith('ERR_TLS_')) {
    // A certificate that does not verify will not verify on a retry either.
    return new GabeError('NETWORK', `TLS: ${message} (${code})`, { cause: err, retryable: false });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    // A name that does not resolve rarely starts resolving within a retry window, but EAI_AGAIN may.
    return new GabeError('NETWORK', `host not found: ${message}`, {
      cause: err,
      retryable: code === 'EAI_AGAIN',
    });
  }
  if (SYSTEM_NETWORK_CODES.has(code) || code.startsWith('UND_ERR')) {
    return new GabeError('NETWORK', `network error (${code}): ${message}`, { cause: err });
  }
  return new GabeError('INTERNAL', message, { cause: err });
}
