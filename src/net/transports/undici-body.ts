/**
 * The body of a response on UndiciTransport (undici-transport.ts): undici hands over each chunk as it
 * leaves its parser; a body read whole with a known length is copied from there straight into the one
 * buffer it ends up in (a pool's, through `alloc`), as H1Transport's is. Chunks that arrive before the
 * reader chooses how to read are kept as they are: undici's chunks are views of a read buffer of their
 * own, never reused, so keeping one needs no copy.
 */
import type { Dispatcher } from 'undici';
import { codeError, DUMP_LIMIT, type HttpBody } from './transport.js';

/** Bytes an iterated body holds for a reader that is behind before undici stops reading the socket. */
const ITERATE_HIGH_WATER = 256 * 1024;

export class UndiciBody implements HttpBody, AsyncIterable<Buffer> {
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private target: Buffer | null = null;
  private filled = 0;
  private mode: 'undecided' | 'collect' | 'iterate' = 'undecided';
  private done = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private discard = false;
  private limit = Number.POSITIVE_INFINITY;

  constructor(
    private readonly controller: Dispatcher.DispatchController,
    readonly length: number | null,
  ) {}

  push(chunk: Buffer): void {
    if (this.discard || this.done) return;
    const n = chunk.length;
    if (this.mode === 'collect' && this.target && this.filled + n <= this.target.length) {
      chunk.copy(this.target, this.filled);
      this.filled += n;
      return;
    }
    this.early.push(chunk);
    this.filled += n;
    this.earlyBytes += n;
    // A reader iterating behind the socket: undici stops reading it (TCP flow control holds the sender).
    if (this.mode === 'iterate' && this.earlyBytes >= ITERATE_HIGH_WATER) this.controller.pause();
    if (this.filled > this.limit) {
      this.controller.abort(codeError(`the body is larger than ${this.limit} bytes`, 'ERR_BODY_TOO_LARGE'));
      return;
    }
    this.wake?.();
  }

  finish(error: Error | null): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    this.wake?.();
  }

  async collect(limit: number, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Promise<Buffer[]> {
    this.mode = 'collect';
    this.limit = limit;
    if (this.filled > limit) {
      this.controller.abort(codeError(`the body is larger than ${limit} bytes`, 'ERR_BODY_TOO_LARGE'));
    }
    if (this.length !== null && this.length > 0) {
      const target = alloc(this.length);
      let at = 0;
      for (const b of this.early) {
        b.copy(target, at);
        at += b.length;
      }
      this.early = [];
      this.earlyBytes = 0;
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
        if (this.early.length === 0 && this.controller.paused) this.controller.resume();
        yield chunk;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
    }
  }

  destroy(error?: Error): void {
    if (this.done) return;
    this.controller.abort(error ?? codeError('the response body was destroyed', 'ERR_STREAM_DESTROYED'));
  }

  async dump(): Promise<void> {
    if (this.done) return;
    if (!(this.length !== null && this.length <= DUMP_LIMIT)) {
      this.controller.abort(codeError('body not read', 'ERR_STREAM_DESTROYED'));
      return;
    }
    this.discard = true;
    this.early = [];
    await this.until(() => this.done);
  }
}
