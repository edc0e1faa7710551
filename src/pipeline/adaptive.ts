/**
 * How many segment requests a track keeps in flight. CDNs cap each connection's bandwidth and add a
 * round trip per request, so more parallel requests buy throughput, up to a point that depends on the
 * origin, the path and this machine. Rather than guess one number, start at `initial` and grow while
 * throughput grows (doubling per step, up to `max`); stop growing once a step brings less than 10%
 * more, and give that step back. Doubling, and short measurements, because a stream of a few hundred
 * segments is over in seconds: the benchmark's sweep (bench/README.md) found a slower ramp spending
 * most of such a download below the level it ends at.
 * An origin that pushes back (429, 503) halves the limit and ends the growth for the job: politeness
 * wins over speed.
 *
 * Pure: callers report completed fetches and throttling; time comes from `now`.
 */
export interface AdaptiveOptions {
  initial: number;
  max: number;
  now?: () => number;
  /**
   * Times a reader waited on the job's speed limit so far (net/rate-limiter.ts RateLimiter.waits). A
   * window in which it grew had the limit, not the origin, as its bottleneck: more connections would
   * only split the same budget, so growth stops there.
   */
  limiterWaits?: () => number;
}

/** The options that tie growth to a job's speed limiter (HttpClient.limiter), when it has one. */
export function limiterOptions(limiter: { readonly waits: number } | null): Partial<AdaptiveOptions> {
  return limiter ? { limiterWaits: () => limiter.waits } : {};
}

/** Statuses by which an origin says "slower, please" (RFC 6585, RFC 9110). */
export const THROTTLE_STATUSES = new Set([429, 503]);

/** A step must raise throughput by this much to justify the connections it added. */
const MIN_GAIN = 1.1;
const GROWTH = 2;
/** A measurement spans at least this long and one round of requests at the current limit. */
const MIN_WINDOW_MS = 200;

export class AdaptiveConcurrency {
  private current: number;
  private readonly max: number;
  private readonly now: () => number;
  private growing: boolean;
  private windowStart: number | null = null;
  private windowBytes = 0;
  private windowFetches = 0;
  private windowWaits = 0;
  private readonly limiterWaits: () => number;
  /** Throughput (bytes/ms) measured at the limit before the last step up, and that limit. */
  private before: number | null = null;
  private previous: number;

  constructor(options: AdaptiveOptions) {
    this.max = Math.max(1, options.max);
    this.current = Math.min(Math.max(1, options.initial), this.max);
    this.now = options.now ?? Date.now;
    this.limiterWaits = options.limiterWaits ?? (() => 0);
    this.previous = this.current;
    this.growing = this.current < this.max;
  }

  get limit(): number {
    return this.current;
  }

  /** A fetch finished with `bytes` of media. */
  onFetch(bytes: number): void {
    if (!this.growing) return;
    const t = this.now();
    if (this.windowStart === null) {
      this.windowStart = t;
      this.windowWaits = this.limiterWaits();
      return; // the first fetch only starts the clock: it carried connection set-up
    }
    this.windowBytes += bytes;
    this.windowFetches++;
    const elapsed = t - this.windowStart;
    if (elapsed < MIN_WINDOW_MS || this.windowFetches < this.current) return;
    const waits = this.limiterWaits();
    this.step(this.windowBytes / elapsed, waits > this.windowWaits);
    this.windowWaits = waits;
    this.windowStart = t;
    this.windowBytes = 0;
    this.windowFetches = 0;
  }

  /** The origin answered 429 or 503 (or similar push-back). */
  onThrottle(): void {
    this.current = Math.max(1, Math.floor(this.current / 2));
    this.growing = false;
  }

  private step(rate: number, limited: boolean): void {
    if (this.before !== null && rate < this.before * MIN_GAIN) {
      // The last step did not pay: give its connections back.
      this.current = this.previous;
      this.growing = false;
      return;
    }
    if (limited) {
      // The speed limit held readers back: the origin could give more than we may take.
      this.growing = false;
      return;
    }
    this.before = rate;
    this.previous = this.current;
    this.current = Math.min(this.max, Math.ceil(this.current * GROWTH));
    if (this.current >= this.max) this.growing = false;
  }
}
