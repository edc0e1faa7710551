import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  backoffDelay,
  DEFAULT_RETRY_POLICY,
  isRetryableStatus,
  parseRetryAfter,
  retryDelay,
  withRetry,
} from '../../src/net/retry.js';
import { GabeError } from '../../src/service/errors.js';

const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000 };

describe('retry policy', () => {
  it('retries 408, 429 and 5xx but not 4xx, 501 or 505', () => {
    for (const s of [408, 429, 500, 502, 503, 504]) assert.ok(isRetryableStatus(s), String(s));
    for (const s of [400, 401, 403, 404, 410, 416, 501, 505]) assert.ok(!isRetryableStatus(s), String(s));
  });

  it('backs off exponentially with jitter, capped', () => {
    assert.equal(
      backoffDelay(0, policy, () => 1),
      100,
    );
    assert.equal(
      backoffDelay(0, policy, () => 0),
      50,
    );
    assert.equal(
      backoffDelay(3, policy, () => 1),
      800,
    );
    assert.equal(
      backoffDelay(10, policy, () => 1),
      1000,
    );
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('soon'), null);
    assert.equal(parseRetryAfter(undefined), null);
  });

  it('honours Retry-After, but gives up when it is too long or retries are spent', () => {
    const throttled = new GabeError('HTTP_STATUS', '429', { retryable: true, retryAfter: 2 });
    assert.equal(
      retryDelay(throttled, 0, policy, () => 1),
      2000,
    );
    const hour = new GabeError('HTTP_STATUS', '503', { retryable: true, retryAfter: 3600 });
    assert.equal(retryDelay(hour, 0, policy), null);
    const net = new GabeError('NETWORK', 'reset');
    assert.equal(retryDelay(net, policy.maxRetries, policy), null);
    assert.equal(retryDelay(new GabeError('HTTP_STATUS', '404'), 0, policy), null);
  });

  it('withRetry stops at the first non-retryable error and passes the attempt number', async () => {
    const seen: number[] = [];
    await assert.rejects(
      withRetry(
        async (attempt) => {
          seen.push(attempt);
          throw new GabeError(attempt < 1 ? 'NETWORK' : 'HTTP_STATUS', 'x');
        },
        { ...policy, baseDelayMs: 1 },
      ),
      (e) => e instanceof GabeError && e.kind === 'HTTP_STATUS',
    );
    assert.deepEqual(seen, [0, 1]);
  });

  it('withRetry turns an abort during back-off into CANCELLED promptly', async () => {
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(
      withRetry(
        async () => {
          throw new GabeError('NETWORK', 'reset');
        },
        { ...policy, baseDelayMs: 10_000, maxDelayMs: 10_000 },
        { signal: ac.signal },
      ),
      (e) => e instanceof GabeError && e.kind === 'CANCELLED',
    );
    assert.ok(Date.now() - started < 2000);
  });
});
