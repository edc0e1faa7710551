/**
 * The segment window of a track: up to the concurrency's limit of requests in flight, their results
 * written strictly in playlist order into one file as soon as their turn comes (no second
 * concatenation pass, and no file per segment to hit open-file limits at 20,000 segments). Requests
 * run at most a window ahead of the writer, and bodies the memory budget cannot hold wait in spill
 * files (memory-budget.ts), so memory stays bounded when one early segment is slow, whatever the
 * segments' size. The checkpoint beside the file records what it holds, so a restarted job fetches
 * only what is missing.
 */
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ensureSpace } from '../../storage/paths.js';
import type { AdaptiveConcurrency } from '../adaptive.js';
import type { BufferPool } from '../buffer-pool.js';
import { CHECKPOINT_MS } from '../checkpoint-timing.js';
import { type Deferred, deferred } from '../deferred.js';
import type { TrackSink } from '../mux/sink.js';
import type { ProgressTracker } from '../progress.js';
import { type TrackCheckpoint, writeCheckpoint } from './checkpoint.js';
import type { Growth } from './live-recording.js';
import { expectedBytes, type SegmentBudget, type Ticket } from './memory-budget.js';
import type { Fetched } from './segment-fetch.js';
import type { SpillFile } from './segment-spill.js';
import type { Fetch, TrackPlan } from './track-plan.js';

/** Free space is re-checked every so many segments written, against the bytes still to come. */
const SPACE_CHECK_SEGMENTS = 50;

/** What the track file holds: its checkpoint without the fingerprint. */
export type TrackPosition = Omit<TrackCheckpoint, 'fingerprint'>;

export interface OrderedWriterOptions {
  /** The track's plan; a live recording's grows while the window runs. */
  plan: TrackPlan;
  /** The track file's path (its checkpoint goes beside it) and the handle it is appended through. */
  file: string;
  out: FileHandle;
  /** What the file already holds: `fetches` counts into `plan.fetches`. */
  from: TrackPosition;
  fingerprint: string;
  /** Fetches one request's media; `ticket` is its share of the budget, released once written. */
  fetch(f: Fetch, ticket: Ticket): Promise<Fetched>;
  limit: AdaptiveConcurrency;
  budget: SegmentBudget;
  pool: BufferPool;
  /** Aborted at the first failure, so the requests in flight stop. */
  stop: AbortController;
  /** Gets the bytes in order as they are written (the merge). */
  sink?: TrackSink | undefined;
  /** Sees the bytes in file order; a spilled fetch's `fetch` comes with its last chunk. */
  onData?: ((buffers: readonly Buffer[], fetch: Fetch | null) => void) | undefined;
  /** A live recording: the window stays open until it says it ended. */
  growth?: Growth | undefined;
  /** The variant's BANDWIDTH, bits/s, for the first requests' expected size (memory-budget.ts). */
  bitrate?: number | null | undefined;
  progress: ProgressTracker;
  reportProgress(): void;
  /** Saves a checkpoint; by default beside the file (checkpoint.ts). */
  saveCheckpoint?: ((cp: TrackCheckpoint) => Promise<void>) | undefined;
}

function sizeOf(buffers: readonly Buffer[]): number {
  let n = 0;
  for (const b of buffers) n += b.length;
  return n;
}

export class OrderedWriter {
  private nextWrite: number;
  private nextStart: number;
  private inFlight = 0;
  private bytes: number;
  private segments: number;
  private seconds: number;
  private lastMsn: number;
  private readonly runStarts: number[];
  private lastRun: number;
  private lastCheckpoint = 0;
  private readonly firstWrite: number;
  private readonly firstBytes: number;
  /** Fetched, waiting for their turn: the media and the share of the memory budget it holds. */
  private readonly ready = new Map<number, { got: Fetched; ticket: Ticket }>();
  private writing = false;
  private failed = false;
  private done: Deferred<void> | null = null;

  constructor(private readonly o: OrderedWriterOptions) {
    const { from } = o;
    this.nextWrite = from.fetches;
    this.nextStart = from.fetches;
    this.bytes = from.bytes;
    this.segments = from.segments;
    this.seconds = from.seconds;
    this.lastMsn = from.lastMsn;
    this.runStarts = from.runStarts;
    this.lastRun = from.runStarts.length - 1;
    this.firstWrite = from.fetches;
    this.firstBytes = from.bytes;
  }

  /** What the file holds so far. */
  get written(): TrackPosition {
    const { nextWrite: fetches, bytes, segments, lastMsn, seconds, runStarts } = this;
    return { fetches, bytes, segments, lastMsn, seconds, runStarts };
  }

  /** Runs the window until every fetch of the plan is in the file; rejects with the first failure. */
  run(): Promise<void> {
    this.done = deferred<void>();
    this.o.growth?.onChange(() => {
      if (!this.failed) this.launch();
    });
    this.launch();
    return this.done.promise;
  }

  /** Removes the spilled fetches that never got their turn (a failure, a cancel). */
  async discard(): Promise<void> {
    await Promise.all([...this.ready.values()].map(({ got }) => got.spill?.remove()));
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.o.stop.abort();
    this.done?.reject(err);
  }

  /** Twice the concurrency: a slow segment at the head of the line does not stop the others at once. */
  private windowSize(): number {
    return Math.max(8, this.o.limit.limit * 2);
  }

  /** Bytes per fetch so far (this run), to guess what the requests in flight will bring. */
  private averageFetch(): number {
    const { nextWrite, firstWrite, bytes, firstBytes } = this;
    return nextWrite > firstWrite ? (bytes - firstBytes) / (nextWrite - firstWrite) : 0;
  }

  private launch(): void {
    const { plan, budget, limit } = this.o;
    while (
      !this.failed &&
      this.inFlight < limit.limit &&
      this.nextStart < plan.fetches.length &&
      this.nextStart < this.nextWrite + this.windowSize()
    ) {
      const f = plan.fetches[this.nextStart]!;
      const expected = expectedBytes(f, this.averageFetch(), this.o.bitrate ?? null);
      if (!budget.mayLaunch(expected, this.nextStart === this.nextWrite)) break;
      const i = this.nextStart++;
      this.inFlight++;
      const ticket = budget.launch(expected);
      this.o.fetch(f, ticket).then(
        (got) => this.fetched(i, got, ticket),
        (err: unknown) => {
          this.inFlight--;
          budget.release(ticket);
          this.fail(err);
        },
      );
    }
    const more = this.o.growth !== undefined && !this.o.growth.ended;
    if (this.nextWrite === plan.fetches.length && this.inFlight === 0 && !this.writing && !more) {
      this.done?.resolve();
    }
  }

  private fetched(i: number, got: Fetched, ticket: Ticket): void {
    this.inFlight--;
    if (this.failed) {
      this.o.budget.release(ticket);
      void got.spill?.remove();
      return;
    }
    this.o.limit.onFetch(got.spill ? got.spill.size : sizeOf(got.buffers));
    this.ready.set(i, { got, ticket });
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.writing || this.failed) return;
    this.writing = true;
    try {
      while (this.ready.has(this.nextWrite) && !this.failed) await this.writeNext();
    } catch (err) {
      this.fail(err);
    } finally {
      this.writing = false;
    }
    if (!this.failed) this.launch();
  }

  /** Writes the fetch whose turn it is, counts it, and checkpoints. */
  private async writeNext(): Promise<void> {
    const { plan, budget, progress } = this.o;
    const { got, ticket } = this.ready.get(this.nextWrite)!;
    this.ready.delete(this.nextWrite);
    const fetch = plan.fetches[this.nextWrite]!;
    this.markRuns(fetch, got);
    const size = got.spill
      ? await this.writeSpill(got.spill, fetch)
      : await this.writeBuffers(got.buffers, fetch);
    budget.release(ticket);
    this.bytes += size;
    for (const p of fetch.pieces) {
      if (p.kind === 'segment') {
        this.segments++;
        this.seconds += p.duration;
        this.lastMsn = p.msn;
        progress.addSegment();
      }
    }
    this.nextWrite++;
    await this.checkpoint();
    this.o.reportProgress();
    if (this.segments % SPACE_CHECK_SEGMENTS === 0 && this.segments > 0) {
      // Estimate what is still to come from the average segment so far.
      const left = (plan.segmentCount - this.segments) * (this.bytes / this.segments);
      await ensureSpace(path.dirname(this.o.file), left * 1.5);
    }
  }

  /** Where each discontinuity run starts in the file (a concat merge cuts the file there). */
  private markRuns(fetch: Fetch, got: Fetched): void {
    let offset = this.bytes;
    for (const [j, p] of fetch.pieces.entries()) {
      if (p.run > this.lastRun) {
        this.runStarts.push(offset);
        this.lastRun = p.run;
      }
      if (fetch.pieces.length > 1) offset += (got.spill ? got.sizes[j] : got.buffers[j]?.length) ?? 0;
    }
  }

  /**
   * A checkpoint per write would cost a file write per segment (20,000 on long streams); every
   * CHECKPOINT_MS bounds what a crash makes us fetch again to the segments of that interval.
   */
  private async checkpoint(): Promise<void> {
    const now = Date.now();
    if (now - this.lastCheckpoint < CHECKPOINT_MS && this.nextWrite !== this.o.plan.fetches.length) return;
    this.lastCheckpoint = now;
    const cp: TrackCheckpoint = { fingerprint: this.o.fingerprint, ...this.written };
    await (this.o.saveCheckpoint ?? ((c) => writeCheckpoint(this.o.file, c)))(cp);
  }

  /** A fetch's media held in memory into the file and the merge, which take the same buffers at once. */
  private async writeBuffers(buffers: Buffer[], fetch: Fetch): Promise<number> {
    const { out, sink, pool } = this.o;
    this.o.onData?.(buffers, fetch);
    const [, copied] = await Promise.all([
      buffers.length === 1 ? out.write(buffers[0]!) : out.writev(buffers),
      sink?.write(buffers),
    ]);
    // On disk, and copied by the merge (or no merge): the next segments may use the buffers.
    if (!sink || copied === true) pool.release(buffers);
    return sizeOf(buffers);
  }

  /** A spilled fetch, a chunk at a time; onData learns the fetch with its last chunk. */
  private async writeSpill(spill: SpillFile, fetch: Fetch): Promise<number> {
    const { out, sink, pool } = this.o;
    if (spill.size === 0) this.o.onData?.([], fetch);
    let done = 0;
    try {
      for await (const chunk of spill.read((n) => pool.take(n))) {
        done += chunk.length;
        this.o.onData?.([chunk], done === spill.size ? fetch : null);
        const [, copied] = await Promise.all([out.write(chunk), sink?.write([chunk])]);
        if (!sink || copied === true) pool.release([chunk]);
      }
    } finally {
      await spill.remove();
    }
    return spill.size;
  }
}
