/**
 * How long, how much and how slowly an origin may answer, for all three transports (H1Transport,
 * node:http, undici): one set of numbers derived from the configuration, the errors that name the limit
 * that was hit, and the watch that enforces the deadlines and the speed floor.
 *
 * - Idle: connection_timeout between two reads (each transport's own socket or body timeout).
 * - Head: the whole response head, interim (1xx) responses included, must arrive within
 *   connection_timeout of the request being sent. An idle timeout alone lets a head dripped at one
 *   byte a second, or an endless stream of 1xx heads, hold a connection forever.
 * - Head size: at most MAX_HEAD_BYTES for the status lines and fields of the final and every interim
 *   response together, and at most MAX_INTERIM_RESPONSES interim responses (RFC 9110 15.2 allows any
 *   number; nothing we send asks for one).
 * - Trailers: the trailer section of a chunked body (RFC 9112 7.1.2) counts against the same size
 *   limit, and must end within connection_timeout of the last chunk.
 * - Speed floor: a body that averages fewer than low_speed_limit bytes/s over a window of
 *   low_speed_time seconds fails, as curl's --speed-limit/--speed-time do. Windows are tumbling, so a
 *   transfer that slows down fails between one and two windows later. Bytes are read off a counter on a
 *   timer (the socket's bytesRead where there is one), never counted per read.
 *
 * Every timeout is an ETIMEDOUT (GABE_ERR_TIMEOUT, retryable), every refusal a protocol error
 * (GABE_ERR_PROTOCOL, retryable): the origin's fault, retried by the usual policy.
 */
import type { Config } from '../service/config.js';
import { PROTOCOL_ERROR_CODE } from '../service/errors.js';

/** Status lines and header fields of one response with its interim responses; also trailers. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Interim (1xx) responses accepted before the final one. */
export const MAX_INTERIM_RESPONSES = 10;

export interface TransferLimits {
  /** connection_timeout, ms: connect, the whole head, the trailer section, the gap between reads. */
  timeoutMs: number;
  /** low_speed_limit, bytes/s; 0 = no floor. */
  lowSpeedLimit: number;
  /** low_speed_time, ms. */
  lowSpeedTimeMs: number;
}

/** The configuration's defaults, for clients made without a configuration (tests, `gabe info`). */
export const DEFAULT_LOW_SPEED = { lowSpeedLimit: 1024, lowSpeedTimeMs: 30_000 } as const;

/** `timeoutMs` and, optionally, the speed floor (the configuration's default when left out). */
export type LimitOptions = Pick<TransferLimits, 'timeoutMs'> & Partial<TransferLimits>;

export function limitsOf(options: LimitOptions): TransferLimits {
  return {
    timeoutMs: options.timeoutMs,
    lowSpeedLimit: options.lowSpeedLimit ?? DEFAULT_LOW_SPEED.lowSpeedLimit,
    lowSpeedTimeMs: options.lowSpeedTimeMs ?? DEFAULT_LOW_SPEED.lowSpeedTimeMs,
  };
}

/** The limits of every HttpClient a configuration makes: spread into its options. */
export function transferLimits(
  config: Pick<Config, 'connection_timeout' | 'low_speed_limit' | 'low_speed_time'>,
): TransferLimits {
  return {
    timeoutMs: config.connection_timeout * 1000,
    lowSpeedLimit: config.low_speed_limit,
    lowSpeedTimeMs: config.low_speed_time * 1000,
  };
}

const seconds = (ms: number) => `${Math.round(ms) / 1000} s`;

function timeout(message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' });
}

export function idleTimeoutError(ms: number): NodeJS.ErrnoException {
  return timeout(`no data for ${ms} ms (connect, headers or body)`);
}

export function headTimeoutError(ms: number): NodeJS.ErrnoException {
  return timeout(
    `the response head did not arrive within ${seconds(ms)} of the request (connection_timeout)`,
  );
}

export function trailerTimeoutError(ms: number): NodeJS.ErrnoException {
  return timeout(
    `the trailer section did not end within ${seconds(ms)} of the last chunk (connection_timeout)`,
  );
}

export function lowSpeedError(limit: number, ms: number): NodeJS.ErrnoException {
  return timeout(
    `the body stayed below ${limit} bytes/s for ${seconds(ms)} (low_speed_limit, low_speed_time)`,
  );
}

/** The origin broke HTTP/1.1; `code` is llhttp's name for the fault when it has one. */
export function protocolError(message: string, code = PROTOCOL_ERROR_CODE): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

export function interimLimitError(): NodeJS.ErrnoException {
  return protocolError(`more than ${MAX_INTERIM_RESPONSES} interim (1xx) responses`);
}

export function headOverflowError(): NodeJS.ErrnoException {
  return protocolError(
    `response head larger than ${MAX_HEAD_BYTES} bytes (header fields, interim responses included)`,
    'HPE_HEADER_OVERFLOW',
  );
}

/**
 * Bytes of a head a parser has already taken apart (node:http's raw [name, value, …] list, or
 * undici's field object): the shortest status line and each field with its CRLF.
 */
export function parsedHeadBytes(
  fields: readonly string[] | Record<string, string | string[] | undefined>,
): number {
  let n = 'HTTP/1.1 200 \r\n\r\n'.length;
  if (Array.isArray(fields)) {
    for (let i = 0; i < fields.length; i += 2) n += fields[i]!.length + (fields[i + 1]?.length ?? 0) + 4;
    return n;
  }
  for (const [name, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value ?? '']) n += name.length + v.length + 4;
  }
  return n;
}

/**
 * The heads of one response (interim ones and the final one) against MAX_INTERIM_RESPONSES and
 * MAX_HEAD_BYTES, for the transports whose parser hands over whole heads (node:http, undici);
 * H1Transport counts bytes as they come (net/transports/h1-head.ts).
 */
export class HeadTally {
  private interim = 0;
  private bytes = 0;

  /** Counts a head of `status` and `bytes`; the limit it breaks, or null. */
  add(status: number, bytes: number): NodeJS.ErrnoException | null {
    this.bytes += bytes;
    if (status < 200 && ++this.interim > MAX_INTERIM_RESPONSES) return interimLimitError();
    return this.bytes > MAX_HEAD_BYTES ? headOverflowError() : null;
  }
}

export function trailerOverflowError(): NodeJS.ErrnoException {
  return protocolError(`trailer section larger than ${MAX_HEAD_BYTES} bytes`, 'HPE_HEADER_OVERFLOW');
}

/** Where a speed window started: when, and the byte counter then. */
export interface SpeedWindow {
  start: number;
  bytes: number;
}

/**
 * The speed floor's decision at `now` (ms), with `bytes` received so far: 'wait' while the window is
 * not over, 'next' when it averaged at least `limit` bytes/s (a new window starts), 'fail' when not.
 */
export function speedVerdict(
  window: SpeedWindow,
  now: number,
  bytes: number,
  floor: { limit: number; timeMs: number },
): 'wait' | 'next' | 'fail' {
  const elapsed = now - window.start;
  if (floor.limit <= 0 || elapsed < floor.timeMs) return 'wait';
  return (bytes - window.bytes) * 1000 < floor.limit * elapsed ? 'fail' : 'next';
}

/** One request under watch; its transport moves it from phase to phase. */
export class Watch {
  private deadline = Number.POSITIVE_INFINITY;
  private deadlineError: (() => Error) | null = null;
  private window: SpeedWindow | null = null;
  private held: () => boolean = () => false;
  private active = true;

  constructor(
    private readonly owner: TransferWatch,
    /** Bytes received on the connection so far (any origin: only differences count). */
    private readonly bytes: () => number,
    private readonly fail: (err: Error) => void,
    /** Restarts the transport's idle timeout: called on every tick the reader holds the body back. */
    private readonly refresh?: () => void,
  ) {}

  /** The request is out: the whole head must arrive within the head deadline. */
  head(): this {
    const ms = this.owner.limits.timeoutMs;
    this.deadline = performance.now() + ms;
    this.deadlineError = () => headTimeoutError(ms);
    return this;
  }

  /**
   * The final head arrived: the body is under the speed floor. `held` says when our reader, not the
   * origin, holds the transfer back (a full buffer nobody reads): the window starts over then.
   */
  body(held?: () => boolean): void {
    this.deadline = Number.POSITIVE_INFINITY;
    this.deadlineError = null;
    if (held) this.held = held;
    if (this.owner.limits.lowSpeedLimit > 0) this.window = { start: performance.now(), bytes: this.bytes() };
  }

  /** The last chunk arrived: the trailer section must end within the deadline. */
  trailers(): void {
    const ms = this.owner.limits.timeoutMs;
    this.deadline = performance.now() + ms;
    this.deadlineError = () => trailerTimeoutError(ms);
  }

  /** The exchange is over, however it ended. */
  end(): void {
    if (!this.active) return;
    this.active = false;
    this.owner.remove(this);
  }

  /** Called by the owner's timer. */
  check(now: number): void {
    if (now >= this.deadline) {
      const err = this.deadlineError?.() ?? headTimeoutError(this.owner.limits.timeoutMs);
      this.end();
      this.fail(err);
      return;
    }
    const w = this.window;
    if (this.held()) {
      // Our reader is behind (a slow disk, a speed limit): not the origin's silence, nor its slowness.
      this.refresh?.();
      if (w) this.window = { start: now, bytes: this.bytes() };
      return;
    }
    if (!w) return;
    const { lowSpeedLimit: limit, lowSpeedTimeMs: timeMs } = this.owner.limits;
    const bytes = this.bytes();
    const verdict = speedVerdict(w, now, bytes, { limit, timeMs });
    if (verdict === 'next') this.window = { start: now, bytes };
    else if (verdict === 'fail') {
      this.end();
      this.fail(lowSpeedError(limit, timeMs));
    }
  }
}

/**
 * The deadlines and speed floor of one transport's requests: one timer for all of them, running only
 * while some are in flight, that looks at each request's phase deadline and byte counter. Deadlines are
 * checked a tick late at most (a quarter of the shortest limit, at most a second).
 */
export class TransferWatch {
  private readonly watches = new Set<Watch>();
  private timer: NodeJS.Timeout | null = null;
  private readonly tickMs: number;

  readonly limits: TransferLimits;

  constructor(options: LimitOptions) {
    const limits = limitsOf(options);
    this.limits = limits;
    const floorMs = limits.lowSpeedLimit > 0 ? limits.lowSpeedTimeMs : Number.POSITIVE_INFINITY;
    this.tickMs = Math.max(50, Math.min(1000, Math.min(limits.timeoutMs, floorMs) / 4));
  }

  /**
   * Starts watching a request; `fail` ends it with the limit's error; `refresh` restarts the
   * transport's idle timeout while the body is held back by its reader.
   */
  watch(bytes: () => number, fail: (err: Error) => void, refresh?: () => void): Watch {
    const w = new Watch(this, bytes, fail, refresh);
    this.watches.add(w);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
    return w;
  }

  remove(w: Watch): void {
    this.watches.delete(w);
    if (this.watches.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private tick(): void {
    const now = performance.now();
    for (const w of this.watches) w.check(now);
  }
}
