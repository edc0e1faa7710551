import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as flushed } from 'node:timers/promises';
import {
  BURST_MS,
  type LimiterClock,
  RateLimiter,
  serviceRateLimiter,
  TokenBucket,
} from '../../src/net/rate-limiter.js';
import { ThrottledBody } from '../../src/net/throttled-body.js';
import { AdaptiveConcurrency } from '../../src/pipeline/adaptive.js';
import { loadConfig } from '../../src/service/config.js';

/** A clock whose time moves only when every reader is waiting on one of its timers. */
class FakeClock implements LimiterClock {
  t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (id: unknown): void => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };

  /** Runs timers in time order until `until` (ms) or until nothing is left to run. */
  async run(until = Number.POSITIVE_INFINITY): Promise<void> {
    for (;;) {
      await flushed();
      await flushed();
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > until) return;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
  }
}

const KB = 1024;

/** A connection reading `total` bytes through the limiter in `chunk`-byte reads; counts what it got. */
function reader(limiter: RateLimiter, total: number, chunk = 16 * KB, clock?: FakeClock) {
  const r = { got: 0, doneAt: null as number | null, done: Promise.resolve() };
  r.done = (async () => {
    while (r.got < total) r.got += await limiter.take(Math.min(chunk, total - r.got));
    r.doneAt = clock?.t ?? null;
  })();
  return r;
}

test('a token bucket starts with a quarter second of tokens and refills at its rate, never beyond', () => {
  const b = new TokenBucket(100 * KB, 0);
  assert.equal(b.burst, Math.floor((100 * KB * BURST_MS) / 1000));
  assert.equal(b.delay(b.burst, 0), 0);
  b.take(b.burst, 0);
  // 10 KB at 100 KB/s: 100 ms.
  assert.equal(b.delay(10 * KB, 0), 100);
  assert.equal(b.available(50), 5 * KB);
  assert.equal(b.available(10_000), b.burst, 'an idle bucket holds one burst, not the idle time');
});

test('a limiter hands out no more than its rate after the first burst, over many connections', async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter(256 * KB, null, clock);
  const readers = Array.from({ length: 6 }, () => reader(limiter, 256 * KB, 64 * KB, clock));
  await clock.run();
  await Promise.all(readers.map((r) => r.done));
  const total = 6 * 256 * KB;
  const last = Math.max(...readers.map((r) => r.doneAt!));
  const burst = (256 * KB * BURST_MS) / 1000;
  // (total − burst) / rate, to the millisecond: the limit is exact, not approximate.
  assert.ok(last >= ((total - burst) * 1000) / (256 * KB) - 1, `done at ${last} ms`);
  assert.ok(last <= (total * 1000) / (256 * KB) + 50, `done at ${last} ms`);
});

test('no single grant exceeds the burst, so a large read is paced rather than let through at once', async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter(40 * KB, null, clock);
  const grants: number[] = [];
  const all = (async () => {
    let got = 0;
    while (got < 100 * KB) {
      const n = await limiter.take(1024 * KB);
      grants.push(n);
      got += n;
    }
  })();
  await clock.run();
  await all;
  assert.ok(Math.max(...grants) <= 10 * KB, `grants ${grants.join(', ')}`);
  assert.ok(clock.t >= ((100 - 10) * 1000) / 40 - 1);
});

test('two jobs under a shared budget get equal shares, however many connections each has', async () => {
  const clock = new FakeClock();
  const service = new RateLimiter(100 * KB, null, clock);
  const a = new RateLimiter(null, service, clock);
  const b = new RateLimiter(null, service, clock);
  const many = Array.from({ length: 8 }, () => reader(a, 10_000 * KB, 16 * KB));
  const one = reader(b, 10_000 * KB, 16 * KB);
  await clock.run(10_000);
  const gotA = many.reduce((s, r) => s + r.got, 0);
  const gotB = one.got;
  // Together: the budget (plus one burst, plus grants in flight); each: about half of it.
  assert.ok(gotA + gotB <= 100 * KB * 10 + 25 * KB + 16 * KB, `${gotA + gotB}`);
  assert.ok(gotA + gotB >= 100 * KB * 9.5, `${gotA + gotB}`);
  assert.ok(Math.abs(gotA - gotB) <= 32 * KB, `A ${gotA} B ${gotB}`);
});

test('a job gets the lower of its own limit and what the service has left', async () => {
  const clock = new FakeClock();
  const service = new RateLimiter(100 * KB, null, clock);
  const slow = new RateLimiter(20 * KB, service, clock);
  const free = new RateLimiter(null, service, clock);
  const s = reader(slow, 10_000 * KB, 4 * KB);
  const f = [reader(free, 10_000 * KB, 4 * KB), reader(free, 10_000 * KB, 4 * KB)];
  await clock.run(10_000);
  const gotFree = f[0]!.got + f[1]!.got;
  assert.ok(s.got <= 20 * KB * 10 + 5 * KB + 4 * KB, `slow job ${s.got}`);
  assert.ok(s.got >= 20 * KB * 9.5, `slow job ${s.got}`);
  // The free job takes what the slow one leaves: about 80 KB/s.
  assert.ok(gotFree >= 80 * KB * 9.5, `free job ${gotFree}`);
  assert.ok(s.got + gotFree <= 100 * KB * 10 + 25 * KB + 8 * KB, `together ${s.got + gotFree}`);
  assert.equal(slow.limit, 20 * KB);
  assert.equal(free.limit, 100 * KB);
});

test('a reader whose request aborts stops waiting, and the next reader is served', async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter(10 * KB, null, clock);
  await limiter.take(10 * KB); // the burst is gone
  const stop = new AbortController();
  const first = limiter.take(2 * KB, stop.signal);
  const second = limiter.take(1 * KB);
  stop.abort(Object.assign(new Error('cancelled'), { name: 'AbortError' }));
  await assert.rejects(first, /cancelled/);
  await clock.run();
  assert.equal(await second, 1 * KB);
  assert.ok(clock.t <= 101, `the second waited ${clock.t} ms, as if the first were still there`);
});

test('a limiter counts the reads it held back; the service budget counts for every job under it', async () => {
  const clock = new FakeClock();
  const service = new RateLimiter(10 * KB, null, clock);
  const job = new RateLimiter(null, service, clock);
  assert.equal(job.waits, 0);
  const r = reader(job, 20 * KB, 2 * KB);
  await clock.run();
  await r.done;
  assert.ok(job.waits > 0);
});

test('adaptive concurrency stops growing while the speed limit holds readers back', () => {
  let t = 0;
  let waits = 0;
  const limited = new AdaptiveConcurrency({ initial: 4, max: 32, now: () => t, limiterWaits: () => waits });
  const free = new AdaptiveConcurrency({ initial: 4, max: 32, now: () => t });
  for (let i = 0; i < 40; i++) {
    t += 100;
    waits += 1;
    // Throughput that grows with connections: only the limit stands in the way.
    limited.onFetch(100_000 * limited.limit);
    free.onFetch(100_000 * free.limit);
  }
  assert.equal(limited.limit, 4);
  assert.ok(free.limit > 4, 'the same fetches without the limit do grow');
});

test('max_total_speed reads like max_speed; null is no limiter at all', () => {
  assert.equal(serviceRateLimiter(null), null);
  assert.equal(serviceRateLimiter('20M')?.bytesPerSecond, 20 * 1024 * 1024);
  assert.throws(() => serviceRateLimiter('0K'), /max_total_speed/);
});

test('max_total_speed is checked at start-up: a speed it cannot read, or zero, is a configuration error', () => {
  const load = (max_total_speed: unknown) =>
    loadConfig({ file: '/nonexistent/config.json', env: {}, overrides: { max_total_speed } });
  assert.equal(load('20M').max_total_speed, '20M');
  assert.equal(load(null).max_total_speed, null);
  assert.throws(() => load('fast'), /max_total_speed/);
  assert.throws(() => load('0K'), /max_total_speed must be ≥ 1/);
  assert.throws(() => load(0), /max_total_speed/);
});

/** A body that hands out `chunks`, as a transport's would, and records how it was ended. */
function bodyOf(chunks: Buffer[]) {
  const body = {
    destroyed: null as Error | null | undefined,
    async *[Symbol.asyncIterator]() {
      for (const c of chunks) yield c;
    },
    destroy(err?: Error) {
      body.destroyed = err ?? null;
    },
    dump: async () => {},
  };
  return body;
}

test('a throttled body read whole lands in one allocated buffer, paced in grants no larger than the burst', async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter(40 * KB, null, clock);
  const data = Buffer.from(Array.from({ length: 100 * KB }, (_, i) => i % 251));
  const chunks = [data.subarray(0, 60 * KB), data.subarray(60 * KB)];
  let allocated = 0;
  const body = new ThrottledBody(bodyOf(chunks), data.length, limiter);
  const read = body.collect(1024 * KB, (size) => {
    allocated++;
    return Buffer.alloc(size);
  });
  await clock.run();
  const got = await read;
  assert.equal(allocated, 1);
  assert.equal(got.length, 1);
  assert.ok(got[0]!.equals(data));
  // 100 KB at 40 KB/s with a 10 KB burst: 2.25 s at least.
  assert.ok(clock.t >= 2250 - 1, `read in ${clock.t} ms`);
  assert.equal(limiter.granted, data.length);
});

test('a throttled body larger than allowed fails, and destroying it ends its wait for tokens', async () => {
  const clock = new FakeClock();
  const limiter = new RateLimiter(10 * KB, null, clock);
  const bigInner = bodyOf([Buffer.alloc(8 * KB), Buffer.alloc(8 * KB)]);
  const big = new ThrottledBody(bigInner, null, limiter);
  const tooLarge = assert.rejects(big.collect(12 * KB), /larger than 12288 bytes/);
  await clock.run();
  await tooLarge;
  assert.notEqual(bigInner.destroyed, undefined, 'the transfer is ended, not left to run');
  const slow = new RateLimiter(10 * KB, null, clock);
  const inner = bodyOf([Buffer.alloc(64 * KB)]);
  const body = new ThrottledBody(inner, null, slow);
  const it = body[Symbol.asyncIterator]();
  assert.equal(((await it.next()).value as Buffer).length, slow.bytesPerSecond! / 4, 'the burst, at once');
  const next = it.next(); // waits for tokens: no timer runs until the clock does
  await flushed();
  const err = new Error('gone');
  body.destroy(err);
  await assert.rejects(next, /gone/);
  assert.equal(inner.destroyed, err);
});
