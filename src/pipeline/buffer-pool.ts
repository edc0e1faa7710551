/**
 * Buffers for segment bodies, reused once a segment is on disk and muxed. A fresh buffer per segment
 * is 240 MB of allocations per 240 MB stream that V8 frees only on a full collection, every ~64 MB of
 * them: the dead ones were the largest part of a download's peak RSS, and grew with its length. What
 * the pool keeps free is bounded in bytes; when segments change size (a higher bit rate later on),
 * the oldest free buffers make room.
 */
export class BufferPool {
  /** Free buffers, oldest first, each with a capacity of a whole number of GRAIN. */
  private readonly free: Buffer[] = [];
  private freeBytes = 0;
  /**
   * Buffers handed out, by their memory: a view (a range cut out, a disguise header cut off) finds
   * its buffer. Weak: one whose fetch failed and is never given back is simply collected.
   */
  private readonly lent = new WeakMap<ArrayBufferLike, Buffer>();

  constructor(private readonly maxFreeBytes = 48 * 1024 * 1024) {}

  /** A buffer of `size` bytes: a free one big enough (at most twice that), or a new one. */
  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const cap = this.free[i]!.length;
      if (cap >= size && cap <= size * 2 && (best < 0 || cap < this.free[best]!.length)) best = i;
    }
    let buffer: Buffer;
    if (best >= 0) {
      buffer = this.free.splice(best, 1)[0]!;
      this.freeBytes -= buffer.length;
    } else {
      buffer = Buffer.allocUnsafeSlow(Math.ceil(size / GRAIN) * GRAIN);
    }
    this.lent.set(buffer.buffer, buffer);
    return buffer.subarray(0, size);
  }

  /** Gives back the buffers behind `views` (others, not from this pool, are left alone). */
  release(views: readonly Buffer[]): void {
    for (const v of views) {
      const buffer = this.lent.get(v.buffer);
      if (!buffer) continue;
      this.lent.delete(v.buffer);
      if (buffer.length > this.maxFreeBytes) continue;
      while (this.freeBytes + buffer.length > this.maxFreeBytes) this.freeBytes -= this.free.shift()!.length;
      this.free.push(buffer);
      this.freeBytes += buffer.length;
    }
  }

  /** Bytes held in free buffers (for tests). */
  get idleBytes(): number {
    return this.freeBytes;
  }
}

const GRAIN = 64 * 1024;
