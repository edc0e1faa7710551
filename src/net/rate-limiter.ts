/**
 * Speed limits: a job's `max_speed` and the process's `max_total_speed`, in bytes per second, applied
 * to every body byte a job's HttpClient reads (net/throttled-body.ts), across all its connections, as
 * yt-dlp's --limit-rate and N_m3u8DL-RE's --max-speed do.
 *
 * Two layers: TokenBucket, the pure policy (time is an argument), and RateLimiter, the gate readers
 * wait at. A job's limiter has its own bucket (or none) and draws every grant from the service's
 * limiter too, so a job gets min(its own limit, what the service has left). The service's limiter
 * serves its requests in arrival order and each job asks it for one grant at a time, so jobs take
 * turns grant by grant: round robin, and no job starves another however many connections it has.
 */
import { parseSpeed } from './speed.js';

/** A bucket holds this much time at its rate: enough to smooth reads out, not a burst of seconds. */
export const BURST_MS = 250;
/** The most one grant hands out: a larger chunk is read in several grants, so jobs alternate finely. */
export const MAX_GRANT = 64 * 1024;

/** A token bucket of `rate` bytes/s holding at most `burst` bytes; starts full. Times in ms. */
export class TokenBucket {
  readonly burst: number;
  private tokens: number;
  private at: number;

  constructor(
    readonly rate: number,
    now: number,
    burstMs = BURST_MS,
  ) {
    this.burst = Math.max(1, Math.floor((rate * burstMs) / 1000));
    this.tokens = this.burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now <= this.at) return;
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
  }

  /** Tokens at `now`. */
  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  /** Milliseconds from `now` until `n` (at most `burst`) tokens are there; 0 when they are. */
  delay(n: number, now: number): number {
    this.refill(now);
    const missing = Math.min(n, this.burst) - this.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.rate);
  }

  take(n: number, now: number): void {
    this.refill(now);
    this.tokens -= n;
  }
}

/** Time for a RateLimiter: the real one, or a test's fake. */
export interface LimiterClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_CLOCK: LimiterClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

interface Waiter {
  n: number;
  resolve(granted: number): void;
  reject(err: Error): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
}

function abortReason(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error('the request was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

/**
 * The gate: readers ask for bytes and wait, first come first served, until the bucket (and the
 * parent's) has them. At most one request per limiter is out at its parent at a time.
 */
export class RateLimiter {
  private readonly bucket: TokenBucket | null;
  private readonly queue: Waiter[] = [];
  private timer: unknown = null;
  /** The head's grant is being asked of the parent. */
  private asking = false;
  private ownWaits = 0;
  /** Bytes granted so far: what the job's readers actually took, at the limited pace. */
  granted = 0;

  constructor(
    /** Bytes/s; null = no limit of its own (only the parent's). */
    readonly bytesPerSecond: number | null,
    readonly parent: RateLimiter | null = null,
    private readonly clock: LimiterClock = REAL_CLOCK,
  ) {
    this.bucket = bytesPerSecond === null ? null : new TokenBucket(bytesPerSecond, clock.now());
  }

  /** The limit readers of this limiter are under at most: its own or its parent's, the lower. */
  get limit(): number | null {
    const own = this.bytesPerSecond;
    const up = this.parent?.limit ?? null;
    if (own === null) return up;
    return up === null ? own : Math.min(own, up);
  }

  /**
   * How many times a reader had to wait for tokens here or at the parent, so far: the limit, not the
   * origin, was the bottleneck then (pipeline/adaptive.ts stops adding connections).
   */
  get waits(): number {
    return this.ownWaits + (this.parent?.waits ?? 0);
  }

  /** The most one grant of this limiter can be (its bucket's and its parent's size). */
  private get grantCap(): number {
    return Math.min(MAX_GRANT, this.bucket?.burst ?? MAX_GRANT, this.parent?.grantCap ?? MAX_GRANT);
  }

  /**
   * Waits until bytes may be read, then grants between 1 and `n` of them: the caller reads that many
   * and asks again for the rest. Rejects with the signal's reason when it aborts first.
   */
  take(n: number, signal?: AbortSignal): Promise<number> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<number>((resolve, reject) => {
      const w: Waiter = { n: Math.max(1, n), resolve, reject, signal, onAbort: null };
      if (signal) {
        w.onAbort = () => this.drop(w);
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.queue.push(w);
      this.pump();
    });
  }

  private drop(w: Waiter): void {
    const i = this.queue.indexOf(w);
    if (i < 0) return;
    this.queue.splice(i, 1);
    w.reject(abortReason(w.signal!));
    // The head's timer was for its size: the next head's may differ.
    if (i === 0 && this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
      this.pump();
    }
  }

  private settle(w: Waiter, granted: number): void {
    this.granted += granted;
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    w.resolve(granted);
  }

  /** Serves the queue's head: at once when the tokens are there, else when they will be. */
  private pump(): void {
    while (this.timer === null && !this.asking) {
      const head = this.queue[0];
      if (!head) return;
      const want = Math.min(head.n, this.grantCap);
      const wait = this.bucket?.delay(want, this.clock.now()) ?? 0;
      if (wait > 0) {
        this.ownWaits++;
        this.timer = this.clock.setTimeout(() => {
          this.timer = null;
          this.pump();
        }, wait);
        return;
      }
      if (this.parent) {
        this.asking = true;
        // Not under the head's signal: if it aborts, the grant goes to the next reader.
        void this.parent.take(want).then((got) => this.onParentGrant(got));
        return;
      }
      this.queue.shift();
      this.bucket?.take(want, this.clock.now());
      this.settle(head, want);
    }
  }

  /** The parent granted `got` bytes for the head (or for whoever is head now). */
  private onParentGrant(got: number): void {
    this.asking = false;
    this.bucket?.take(got, this.clock.now());
    const head = this.queue.shift();
    if (head) this.settle(head, Math.min(got, head.n));
    this.pump();
  }
}

/**
 * A job's limiter: its own `max_speed` (as requested: bytes/s or "5M") under the service's; null when
 * neither limits.
 */
export function jobRateLimiter(
  maxSpeed: number | string | null | undefined,
  service: RateLimiter | null | undefined,
): RateLimiter | null {
  const own = parseSpeed(maxSpeed);
  if (own === null && !service) return null;
  return new RateLimiter(own, service ?? null);
}

/** The process's limiter for config max_total_speed; null = unlimited. Each worker process has its own. */
export function serviceRateLimiter(maxTotalSpeed: number | string | null | undefined): RateLimiter | null {
  const rate = parseSpeed(maxTotalSpeed, 'max_total_speed');
  return rate === null ? null : new RateLimiter(rate);
}
