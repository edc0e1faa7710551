/**
 * A response body read no faster than a RateLimiter (net/rate-limiter.ts) allows. The bytes wait in
 * the transport's body, whose buffer is bounded (it stops reading the socket once it holds a few
 * hundred KB), so a slow reader holds the origin back through TCP flow control rather than piling
 * bytes up here. The transports count the time their body waits for us as ours, not the origin's:
 * neither the idle timeout nor the speed floor runs then (net/deadlines.ts, Watch).
 */

import type { RateLimiter } from './rate-limiter.js';
import { codeError, type HttpBody } from './transports/transport.js';

export class ThrottledBody implements HttpBody, AsyncIterable<Buffer> {
  /** Ends a wait for tokens when the body is destroyed or the request aborted. */
  private readonly stop = new AbortController();

  constructor(
    private readonly inner: HttpBody,
    private readonly length: number | null,
    private readonly limiter: RateLimiter,
    /** The request's (the job's): listened to only while the body is read, so none pile up on it. */
    private readonly signal?: AbortSignal,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const onAbort = () => this.stop.abort(this.signal?.reason);
    if (this.signal?.aborted) onAbort();
    this.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of this.inner) {
        let rest = chunk as Buffer;
        while (rest.length > 0) {
          const n = await this.limiter.take(rest.length, this.stop.signal);
          yield n >= rest.length ? rest : rest.subarray(0, n);
          rest = rest.subarray(n);
        }
      }
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The whole body, at the limit's pace: into one `alloc`ed buffer when the length is known. */
  async collect(limit: number, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Promise<Buffer[]> {
    const target =
      this.length !== null && this.length > 0 && this.length <= limit ? alloc(this.length) : null;
    const chunks: Buffer[] = [];
    let filled = 0;
    for await (const chunk of this) {
      if (filled + chunk.length > limit) {
        const err = codeError(`the body is larger than ${limit} bytes`, 'ERR_BODY_TOO_LARGE');
        this.destroy(err);
        throw err;
      }
      if (target) {
        const fit = Math.min(chunk.length, target.length - filled);
        chunk.copy(target, filled, 0, fit);
        // More than Content-Length cannot come from a transport that frames by it; kept, not lost.
        if (fit < chunk.length) chunks.push(chunk.subarray(fit));
      } else chunks.push(chunk);
      filled += chunk.length;
    }
    if (!target) return chunks;
    return filled <= target.length ? [target.subarray(0, filled)] : [target, ...chunks];
  }

  destroy(error?: Error): void {
    this.stop.abort(error);
    this.inner.destroy(error);
  }

  dump(): Promise<void> {
    return this.inner.dump();
  }
}
