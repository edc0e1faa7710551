/**
 * Where the in-process remux keeps the sample bytes demuxed and not yet written: slabs recycled once
 * the write using them is done, and each track's list of frames pending. Pure: no I/O.
 */

/** Bytes of one slab: frames are copied into slabs, each reused once the writes using it are done. */
const SLAB = 1024 * 1024;

/**
 * Where demuxed frames are copied to on their way to the file. A fresh buffer per frame would put
 * another 240 MB through V8's external-memory accounting per 240 MB stream, and every ~64 MB of that
 * starts a full garbage collection; slabs recycled after their write keep it at a few megabytes.
 */
export class Slabs {
  private current: Buffer = Buffer.allocUnsafeSlow(SLAB);
  private used = 0;
  private readonly free: Buffer[] = [];
  private retired: Buffer[] = [];

  take(n: number): Buffer {
    if (n > SLAB / 4) return Buffer.allocUnsafeSlow(n);
    if (this.used + n > this.current.length) {
      this.retired.push(this.current);
      this.current = this.free.pop() ?? Buffer.allocUnsafeSlow(SLAB);
      this.used = 0;
    }
    const view = this.current.subarray(this.used, this.used + n);
    this.used += n;
    return view;
  }

  /**
   * The slabs filled before now: every frame in them is in the write being queued, so they can be
   * reused once it is done.
   */
  release(): () => void {
    const done = this.retired;
    this.retired = [];
    return () => {
      this.free.push(...done);
    };
  }
}

/** Frames demuxed and not yet written: their bytes, and how many samples they are. */
export class Pending {
  buffers: Buffer[] = [];
  samples = 0;
}
