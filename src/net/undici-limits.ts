/**
 * undici's own limits, for the transports built on it (the proxied one, and the bench-only direct
 * one): its options set from deadlines.ts's numbers, and its errors turned into deadlines.ts's, so
 * that a request fails the same way whichever transport carried it.
 */
import {
  headOverflowError,
  headTimeoutError,
  idleTimeoutError,
  MAX_HEAD_BYTES,
  type TransferLimits,
  trailerOverflowError,
} from './deadlines.js';

/** The Agent options that carry the limits; the head deadline and speed floor are TransferWatch's. */
export function undiciAgentLimits(timeoutMs: number) {
  return {
    keepAliveTimeout: 30_000,
    // A backstop only: the head deadline is the watch's, which a 1xx does not start over.
    headersTimeout: 2 * timeoutMs,
    // The longest gap between two body chunks: a stalled transfer fails after connection_timeout
    // instead of hanging forever.
    bodyTimeout: timeoutMs,
    // One limit for every transport; undici's own default is 16 KB.
    maxHeaderSize: MAX_HEAD_BYTES,
  };
}

/** undici's own timeouts and head limit, set to these limits, as the errors the other transports give. */
export function undiciLimitError(err: Error | null, limits: TransferLimits, inBody: boolean): Error {
  if (!err) return new Error('no socket');
  switch ((err as NodeJS.ErrnoException).code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return idleTimeoutError(limits.timeoutMs);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return headTimeoutError(limits.timeoutMs);
    case 'UND_ERR_HEADERS_OVERFLOW':
      return inBody ? trailerOverflowError() : headOverflowError();
    default:
      return err;
  }
}
