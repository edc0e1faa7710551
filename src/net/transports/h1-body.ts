/**
 * The body of a response on H1Transport (h1-transport.ts), fed by its Exchange (h1-exchange.ts) from
 * the shared read buffer: collected whole into one buffer when the length is known, or iterated.
 */
import type { Exchange } from './h1-exchange.js';
import { codeError, DUMP_LIMIT, type HttpBody } from './transport.js';

/** Bytes an iterated body holds for a reader that is behind before the socket stops being read. */
const ITERATE_HIGH_WATER = 256 * 1024;

/** The body of a response: collected whole, or iterated, as the reader asks; bytes before that wait. */
export class Body implements HttpBody, AsyncIterable<Buffer> {
  /** Copies of what arrived before the reader chose how to read. */
  private early: Buffer[] = [];
  private target: Buffer | null = null;
  private filled = 0;
  private mode: 'undecided' | 'collect' | 'iterate' = 'undecided';
  private done = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private discard = false;
  private limit = Number.POSITIVE_INFINITY;
  /** Bytes in `early`; the socket is paused while an iterating reader leaves too many there. */
  private earlyBytes = 0;
  private paused = false;

  constructor(
    private readonly exchange: Exchange,
    readonly length: number | null,
  ) {}

  /** Bytes of the body from the shared read buffer: copied, as the buffer is reused at once. */
  push(src: Buffer, start: number, end: number): void {
    if (this.discard) return;
    const n = end - start;
    if (this.mode === 'collect' && this.target && this.filled + n <= this.target.length) {
      src.copy(this.target, this.filled, start, end);
      this.filled += n;
      return;
    }
    this.early.push(Buffer.from(src.subarray(start, end)));
    this.filled += n;
    this.earlyBytes += n;
    // A reader iterating behind the socket: stop reading it (TCP flow control holds the sender).
    if (this.mode === 'iterate' && this.earlyBytes >= ITERATE_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.exchange.conn.socket.pause();
    }
    if (this.filled > this.limit) {
      this.exchange.fail(
        codeError(`the body is larger than ${this.limit} bytes`, 'ERR_BODY_TOO_LARGE'),
        true,
      );
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
    this.exchange.conn.socket.resume();
  }

  /**
   * The whole body: one buffer, allocated once, when the length is known; else the pieces as they
   * came. More than `limit` bytes fail the read.
   */
  async collect(limit: number, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Promise<Buffer[]> {
    this.mode = 'collect';
    this.limit = limit;
    if (this.filled > limit) {
      this.exchange.fail(codeError(`the body is larger than ${limit} bytes`, 'ERR_BODY_TOO_LARGE'), true);
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
    this.exchange.fail(error ?? codeError('the response body was destroyed', 'ERR_STREAM_DESTROYED'), true);
  }

  async dump(): Promise<void> {
    if (this.done) return;
    if (!(this.length !== null && this.length <= DUMP_LIMIT)) {
      this.exchange.fail(codeError('body not read', 'ERR_STREAM_DESTROYED'), true);
      return;
    }
    this.discard = true;
    this.early = [];
    await this.until(() => this.done);
  }
}
