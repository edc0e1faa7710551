/**
 * The sample table of one track of a plain MP4 (ISO/IEC 14496-12 8.6-8.7: sizes, durations,
 * composition offsets, sync samples, chunks), filled per frame while the media is written and read
 * once by the moov writer at the end. Kept in typed-array blocks, small for long streams. Pure.
 */

const BLOCK = 16 * 1024;

/**
 * A growable column of numbers (sample sizes, chunk offsets) in fixed blocks: no JS array entry per
 * value, and growing never copies (a doubling array would hold both copies for a moment).
 */
class Column<T extends Float64Array | Uint32Array | Int32Array> {
  length = 0;
  private readonly blocks: T[] = [];
  constructor(private readonly make: (n: number) => T) {}
  push(v: number): void {
    const i = this.length & (BLOCK - 1);
    if (i === 0) this.blocks.push(this.make(BLOCK));
    this.blocks[this.blocks.length - 1]![i] = v;
    this.length++;
  }
  at(i: number): number {
    return this.blocks[Math.floor(i / BLOCK)]![i & (BLOCK - 1)]!;
  }
}

const f64 = (n: number) => new Float64Array(n);
const u32 = (n: number) => new Uint32Array(n);
const i32 = (n: number) => new Int32Array(n);

/**
 * One track's samples as the moov needs them, kept small for long streams: sizes (4 bytes a sample),
 * durations as runs (stts), composition offsets only once one is not zero (ctts), sync samples as a
 * list (stss), and the chunks.
 */
export class SampleTable {
  readonly sizes = new Column(u32);
  /** Composition offsets; null while every one so far is 0. */
  cts: Column<Int32Array> | null = null;
  readonly syncs = new Column(u32);
  readonly chunkOffsets = new Column(f64);
  readonly chunkSamples = new Column(u32);
  /** (count, duration) runs of the durations known so far: all samples but the last. */
  private readonly deltas: number[] = [];
  bytes = 0;
  firstDts = 0;
  lastDts = 0;
  /** Duration of the last sample, which no later timestamp gives. */
  lastDuration = 0;

  get count(): number {
    return this.sizes.length;
  }

  /** The duration of the sample before the last (what a last sample is given), or 0. */
  get lastDelta(): number {
    return this.deltas.length > 0 ? this.deltas[this.deltas.length - 1]! : 0;
  }

  add(size: number, dts: number, cts: number, sync: boolean): void {
    const n = this.count;
    if (n === 0) this.firstDts = dts;
    else {
      const d = dts - this.lastDts;
      const runs = this.deltas;
      if (runs.length > 0 && runs[runs.length - 1] === d) runs[runs.length - 2]!++;
      else runs.push(1, d);
    }
    this.lastDts = dts;
    this.sizes.push(size);
    if (cts !== 0 && !this.cts) {
      this.cts = new Column(i32);
      for (let i = 0; i < n; i++) this.cts.push(0);
    }
    this.cts?.push(cts);
    if (sync) this.syncs.push(n + 1);
    this.bytes += size;
  }

  /**
   * Adds `delta` to every composition offset: a track whose offsets go negative (trun version 1)
   * has its decode times moved earlier instead, as ffmpeg's mov demuxer does (its dts_shift).
   */
  shiftCts(delta: number): void {
    const old = this.cts;
    if (!old || delta === 0) return;
    const shifted = new Column(i32);
    for (let i = 0; i < this.count; i++) shifted.push(old.at(i) + delta);
    this.cts = shifted;
  }

  /** Samples [first, count) were written contiguously at `offset`. */
  addChunk(offset: number, samples: number): void {
    if (samples > 0) {
      this.chunkOffsets.push(offset);
      this.chunkSamples.push(samples);
    }
  }

  /** (count, duration) runs of every sample's duration, the last one's included. */
  durationRuns(): number[] {
    if (this.count === 0) return [];
    const runs = this.deltas.map((v, i) => (i % 2 === 1 ? Math.round(v) : v));
    const last = Math.round(this.lastDuration);
    if (runs.length > 0 && runs[runs.length - 1] === last) runs[runs.length - 2]!++;
    else runs.push(1, last);
    return runs;
  }

  /** Sum of the sample durations: the media's length in track ticks. */
  get mediaDuration(): number {
    return this.count === 0 ? 0 : this.lastDts - this.firstDts + this.lastDuration;
  }
}
