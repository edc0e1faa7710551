/**
 * A response body as HttpClient reads it, for the transports that parse responses themselves
 * (H1Transport, UndiciTransport): collected whole or iterated, as the reader asks. A body read whole
 * with a known length is copied straight into the one buffer it ends up in (a pool's, through
 * `alloc`), without a list of chunks or a join.
 */
import { codeError, DUMP_LIMIT, type HttpBody } from './transport.js';

/** Bytes an iterated body holds for a reader that is behind before the socket stops being read. */
const ITERATE_HIGH_WATER = 256 * 1024;

/**
 * The body of a response: collected whole, or iterated, as the reader asks; bytes before that wait.
 * A transport says how it keeps bytes that arrive early, stops and restarts reading its socket, and
 * ends its exchange.
 */
export abstract class ResponseBody implements HttpBody, AsyncIterable<Buffer> {
  /** What arrived before the reader chose how to read. */
  private early: Buffer[] = [];
  private target: Buffer | null = null;
  private filled = 0;
  private mode: 'undecided' | 'collect' | 'iterate' = 'undecided';
  protected done = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private discard = false;
  private limit = Number.POSITIVE_INFINITY;
  /** Bytes in `early`; the socket is paused while an iterating reader leaves too many there. */
  private earlyBytes = 0;
  private paused = false;

  constructor(readonly length: number | null) {}

  /** `src[start, end)` as a buffer of its own, to be kept until the reader asks for it. */
  protected abstract keep(src: Buffer, start: number, end: number): Buffer;
  /** Ends the exchange with `error`: the body fails with it. */
  protected abstract abort(error: Error): void;
  protected abstract pauseReading(): void;
  protected abstract resumeReading(): void;

  /** Bytes of the body, `src[start, end)`. */
  push(src: Buffer, start = 0, end = src.length): void {
    if (this.discard) return;
    const n = end - start;
    if (this.mode === 'collect' && this.target && this.filled + n <= this.target.length) {
      src.copy(this.target, this.filled, start, end);
      this.filled += n;
      return;
    }
    this.early.push(this.keep(src, start, end));
    this.filled += n;
    this.earlyBytes += n;
    // A reader iterating behind the socket: stop reading it (TCP flow control holds the sender).
    if (this.mode === 'iterate' && this.earlyBytes >= ITERATE_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.pauseReading();
    }
    if (this.filled > this.limit) {
      this.abort(codeError(`the body is larger than ${this.limit} bytes`, 'ERR_BODY_TOO_LARGE'));
      return;
    }
    this.wake?.();
  }

  finish(error: Error | null): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    // The whole body is in: the connection reads again before it is reused.
    this.unpause();
    this.wake?.();
  }

  /** The socket is not being read because the reader is behind: no fault of the origin's. */
  get held(): boolean {
    return this.paused;
  }

  private unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeReading();
  }

  /**
   * The whole body: one buffer, allocated once, when the length is known; else the pieces as they
   * came. More than `limit` bytes fail the read.
   */
  async collect(limit: number, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Promise<Buffer[]> {
    this.mode = 'collect';
    this.limit = limit;
    if (this.filled > limit) {
      this.abort(codeError(`the body is larger than ${limit} bytes`, 'ERR_BODY_TOO_LARGE'));
    }
    if (this.length !== null && this.length > 0) {
      const target = alloc(this.length);
      let at = 0;
      for (const b of this.early) {
        b.copy(target, at);
        at += b.length;
      }
      this.early = [];
      this.target = target;
      this.filled = at;
    }
    await this.until(() => this.done);
    if (this.error) throw this.error;
    if (this.target) return [this.target.subarray(0, this.filled)];
    return this.early;
  }

  private until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.wake = () => {
        if (!ready()) return;
        this.wake = null;
        resolve();
      };
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    this.mode = 'iterate';
    for (;;) {
      await this.until(() => this.early.length > 0 || this.done);
      while (this.early.length > 0) {
        const chunk = this.early.shift()!;
        this.earlyBytes -= chunk.length;
        if (this.early.length === 0) this.unpause();
        yield chunk;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
    }
  }

  destroy(error?: Error): void {
    this.abort(error ?? codeError('the response body was destroyed', 'ERR_STREAM_DESTROYED'));
  }

  async dump(): Promise<void> {
    if (this.done) return;
    if (!(this.length !== null && this.length <= DUMP_LIMIT)) {
      this.abort(codeError('body not read', 'ERR_STREAM_DESTROYED'));
      return;
    }
    this.discard = true;
    this.early = [];
    await this.until(() => this.done);
  }
}
