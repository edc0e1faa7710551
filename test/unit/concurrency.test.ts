import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdaptiveConcurrency } from '../../src/pipeline/adaptive.js';

/** Drives a controller with a simulated origin: `rate(limit)` bytes per ms, one fetch of 400 KB each. */
function simulate(
  c: AdaptiveConcurrency,
  rate: (limit: number) => number,
  fetches: number,
  clock: { t: number },
) {
  const size = 400_000;
  for (let i = 0; i < fetches; i++) {
    clock.t += size / rate(c.limit);
    c.onFetch(size);
  }
}

describe('adaptive segment concurrency', () => {
  it('doubles while each step buys at least 10% more throughput, up to the maximum', () => {
    const clock = { t: 0 };
    const c = new AdaptiveConcurrency({ initial: 16, max: 64, now: () => clock.t });
    // Per-connection caps: throughput proportional to the connections, without end.
    simulate(c, (n) => n * 6, 2000, clock);
    assert.equal(c.limit, 64);
  });

  it('gives back the last step when it did not pay, and stays there', () => {
    const clock = { t: 0 };
    const c = new AdaptiveConcurrency({ initial: 16, max: 256, now: () => clock.t });
    // Saturates at 32 connections: 64 brings nothing more.
    simulate(c, (n) => Math.min(n, 32) * 6, 3000, clock);
    assert.equal(c.limit, 32);
  });

  it('does not grow on a measurement shorter than 300 ms or one round of requests', () => {
    const clock = { t: 0 };
    const c = new AdaptiveConcurrency({ initial: 16, max: 64, now: () => clock.t });
    for (let i = 0; i < 15; i++) {
      clock.t += 100;
      c.onFetch(1);
    }
    assert.equal(c.limit, 16, '14 fetches after the first are fewer than one round of 16');
    const fast = new AdaptiveConcurrency({ initial: 16, max: 64, now: () => clock.t });
    for (let i = 0; i < 100; i++) {
      clock.t += 1;
      fast.onFetch(1);
    }
    assert.equal(fast.limit, 16, '100 fetches in 100 ms are too short a measurement');
  });

  it('halves on push-back (429/503) and never grows again for that job', () => {
    const clock = { t: 0 };
    const c = new AdaptiveConcurrency({ initial: 16, max: 64, now: () => clock.t });
    c.onThrottle();
    assert.equal(c.limit, 8);
    simulate(c, (n) => n * 6, 2000, clock);
    assert.equal(c.limit, 8);
    c.onThrottle();
    c.onThrottle();
    c.onThrottle();
    c.onThrottle();
    assert.equal(c.limit, 1, 'never below one request');
  });

  it('is fixed when the maximum is the initial number (use_multithreading false, gabe download -n)', () => {
    const clock = { t: 0 };
    const c = new AdaptiveConcurrency({ initial: 1, max: 1, now: () => clock.t });
    simulate(c, (n) => n * 6, 500, clock);
    assert.equal(c.limit, 1);
    const capped = new AdaptiveConcurrency({ initial: 32, max: 8, now: () => clock.t });
    assert.equal(capped.limit, 8, 'a maximum below the initial number wins');
  });
});
