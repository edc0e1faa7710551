import { GabeError, isAbortError, toGabeError } from '../service/errors.js';

/** Retry policy as data (hls.js's LoadPolicy): the decisions below are pure functions of it. */
export interface RetryPolicy {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest Retry-After we honour; a server asking for an hour is treated as a failure. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxRetries: 3,
  baseDelayMs: 500,
  maxDelayMs: 15_000,
  maxRetryAfterMs: 60_000,
};

/**
 * Statuses worth asking again: request timeout, throttling, and server-side failures. 501 and 505
 * say the server will never do it, so they are final (undici's RetryHandler makes the same split).
 */
export function isRetryableStatus(status: number): boolean {
  return (
    status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505)
  );
}

/** Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, nowMs = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** Exponential back-off with jitter in [50%, 100%] of the step, so many clients do not retry in step. */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(step * (0.5 + random() * 0.5));
}

/**
 * How long to wait before retry number `attempt + 1`, or null to give up. `attempt` counts the
 * retries already made (0 before the first retry).
 */
export function retryDelay(
  err: GabeError,
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | null {
  if (!err.retryable || attempt >= policy.maxRetries) return null;
  if (err.retryAfter !== undefined) {
    const ms = err.retryAfter * 1000;
    if (ms > policy.maxRetryAfterMs) return null;
    return Math.max(ms, backoffDelay(attempt, policy, random) / 4);
  }
  return backoffDelay(attempt, policy, random);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new GabeError('CANCELLED', 'the job was cancelled'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new GabeError('CANCELLED', 'the job was cancelled'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryHooks {
  signal?: AbortSignal | undefined;
  onRetry?: (err: GabeError, attempt: number, delayMs: number) => void;
  random?: () => number;
}

/**
 * Runs `fn` until it succeeds, fails with a non-retryable error, or runs out of retries. `fn` gets the
 * attempt number so it can resume (e.g. send Range from the bytes it already has).
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  hooks: RetryHooks = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (raw) {
      if (hooks.signal?.aborted || isAbortError(raw))
        throw new GabeError('CANCELLED', 'the job was cancelled');
      const err = toGabeError(raw);
      const delay = retryDelay(err, attempt, policy, hooks.random);
      if (delay === null) throw err;
      hooks.onRetry?.(err, attempt + 1, delay);
      await sleep(delay, hooks.signal);
    }
  }
}
