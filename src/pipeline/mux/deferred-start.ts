/**
 * Between the tracks and ffmpeg when ffmpeg must wait (pipeline/hls/job-mux.ts): pipes that hold the first bytes until
 * the merger exists, and the reading of the main track's first timestamp, which the subtitles need
 * before ffmpeg can start.
 */

import { firstFmp4Pts, firstTsPts } from '../../media/pts.js';
import { GabeError } from '../../service/errors.js';
import { deferred } from '../deferred.js';
import type { TrackMerger, TrackSink } from './sink.js';

/** Bytes of the main track read for its first timestamp (TS: the first PES of each stream). */
const ORIGIN_SCAN_BYTES = 4 * 1024 * 1024;

/**
 * Collects a track's first bytes until its first timestamp can be read, giving up (null) after two
 * segments without one.
 */
export function originWatcher(fmp4: () => boolean) {
  const chunks: Buffer[] = [];
  let size = 0;
  const origin = deferred<number | null>();
  let done = false;
  let segments = 0;
  const finish = (pts: number | null) => {
    if (done) return;
    done = true;
    chunks.length = 0;
    origin.resolve(pts);
  };
  return {
    origin: origin.promise,
    finish,
    see(buffers: readonly Buffer[], fetch: { pieces: { kind: string }[] } | null) {
      if (done) return;
      // Copies: the track reuses its buffers once they are written.
      for (const b of buffers) chunks.push(Buffer.from(b));
      for (const b of buffers) size += b.length;
      segments += fetch ? fetch.pieces.filter((p) => p.kind === 'segment').length : 0;
      const head = Buffer.concat(chunks, size);
      const pts = fmp4() ? firstFmp4Pts(head) : firstTsPts(head);
      if (pts !== null || size >= ORIGIN_SCAN_BYTES || segments >= 2) finish(pts);
    },
  };
}

/** What a pipe holds in memory while ffmpeg has not started: enough for the first segments. */
const EARLY_BYTES = 16 * 1024 * 1024;

/**
 * A pipe into a merger that starts later (once its subtitle files exist). The first writes are held
 * in memory, so the track gets far enough for its first timestamp to be read (the subtitles need it),
 * then the writer waits for ffmpeg.
 */
export function deferredSink(
  merger: Promise<TrackMerger>,
  pick: (m: TrackMerger) => TrackSink | null,
): TrackSink & { flush(): Promise<void> } {
  let held: Buffer[] = [];
  let heldBytes = 0;
  let opening: Promise<TrackSink> | null = null;
  // Writes go to `held` until the merger exists or `held` is full; then, in order, through `opening`,
  // which first sends what was held.
  const open = (): Promise<TrackSink> => {
    opening ??= (async () => {
      const sink = pick(await merger);
      if (!sink) throw new GabeError('INTERNAL', 'the merger has no pipe for this track');
      const early = held;
      held = [];
      if (early.length > 0) await sink.write(early);
      return sink;
    })();
    return opening;
  };
  merger.then(open, () => {}).catch(() => {});
  return {
    async write(chunks) {
      const size = chunks.reduce((n, c) => n + c.length, 0);
      if (!opening && heldBytes + size <= EARLY_BYTES) {
        // Copies: the caller reuses its buffers once a write resolves true.
        for (const c of chunks) held.push(Buffer.from(c));
        heldBytes += size;
        return true;
      }
      return (await open()).write(chunks);
    },
    async flush() {
      await open();
    },
  };
}
