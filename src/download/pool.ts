/**
 * Buffers for segment bodies, reused once a segment is on disk and muxed. A fresh buffer per segment
 * is 240 MB of allocations per 240 MB stream that V8 frees only on a full collection, every ~64 MB of
 * them: the dead ones were the largest part of a download's peak RSS, and grew with its length. The
 * pool holds at most what was in flight at once, which the track's buffer limit bounds.
 */
export class BufferPool {
  /** Free buffers, each with a capacity of a whole number of GRAIN. */
  private readonly free: Buffer[] = [];
  /**
   * Buffers handed out, by their memory: a view (a range cut out, a disguise header cut off) finds
   * its buffer. Weak: one whose fetch failed and is never given back is simply collected.
   */
  private readonly lent = new WeakMap<ArrayBufferLike, Buffer>();

  constructor(private readonly maxFree = 256) {}

  /** A buffer of `size` bytes: a free one big enough (at most twice that), or a new one. */
  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const cap = this.free[i]!.length;
      if (cap >= size && cap <= size * 2 && (best < 0 || cap < this.free[best]!.length)) best = i;
    }
    const buffer =
      best >= 0 ? this.free.splice(best, 1)[0]! : Buffer.allocUnsafeSlow(Math.ceil(size / GRAIN) * GRAIN);
    this.lent.set(buffer.buffer, buffer);
    return buffer.subarray(0, size);
  }

  /** Gives back the buffers behind `views` (others, not from this pool, are left alone). */
  release(views: readonly Buffer[]): void {
    for (const v of views) {
      const buffer = this.lent.get(v.buffer);
      if (!buffer) continue;
      this.lent.delete(v.buffer);
      if (this.free.length < this.maxFree) this.free.push(buffer);
    }
  }
}

const GRAIN = 64 * 1024;
