/**
 * One track of an HLS job downloaded into its file: resumed from the checkpoint beside it, its
 * requests run by the segment window (ordered-writer.ts).
 */
import { setMaxListeners } from 'node:events';
import { createReadStream } from 'node:fs';
import { open, rm, truncate } from 'node:fs/promises';
import type { HttpClient } from '../../net/client.js';
import type { RetryPolicy } from '../../net/retry.js';
import { GabeError, isAbortError, isGabeError, toGabeError } from '../../service/errors.js';
import type { Logger } from '../../service/log.js';
import { AdaptiveConcurrency, limiterOptions } from '../adaptive.js';
import { BufferPool } from '../buffer-pool.js';
import type { TrackSink } from '../mux/sink.js';
import type { ProgressTracker } from '../progress.js';
import { readCheckpoint, type TrackCheckpoint } from './checkpoint.js';
import type { KeyCache } from './key-cache.js';
import type { Growth } from './live-recording.js';
import { SegmentBudget } from './memory-budget.js';
import { OrderedWriter, type TrackPosition } from './ordered-writer.js';
import type { FetchContext } from './segment-fetch.js';
import { removeStaleSpills } from './segment-spill.js';
import type { Fetch, TrackPlan } from './track-plan.js';
import { FreshUrls, fetchWithRefresh } from './url-refresh.js';

export interface TrackOptions {
  http: HttpClient;
  plan: TrackPlan;
  /** The track file: pieces are appended to it in playlist order. */
  file: string;
  /** Requests in flight: `initial` at first, raised while throughput grows up to `max` (pipeline/adaptive.ts). */
  concurrency: { initial: number; max: number };
  policy: RetryPolicy;
  keys: KeyCache;
  signal: AbortSignal;
  log: Logger;
  progress: ProgressTracker;
  reportProgress(): void;
  /** A label for errors ("video", "audio"). */
  label: string;
  /** Counts a retried request (metrics). */
  onRetry?: () => void;
  /** Re-fetches and plans the track's media playlist (fresh signed URLs) when segments or keys expire. */
  refresh?: () => Promise<TrackPlan>;
  /** Gets the track's bytes in order as they are written (the merge), from the first byte on a resume too. */
  sink?: TrackSink;
  /** Set once the track's disguised segments have been logged (one line per track, not per segment). */
  disguiseLogged?: boolean;
  /** A live recording: the plan grows until it says it ended. */
  growth?: Growth;
  /**
   * A live recording resumed after a restart: the file's first `bytes` are kept and the plan holds only
   * what comes after them. Without it, a checkpoint matching the plan's fingerprint is looked for.
   */
  resume?: { checkpoint: TrackCheckpoint | null; fingerprint: string };
  /**
   * Sees the track's bytes in file order, those a resume keeps first: the job's mux (job-mux.ts) reads
   * the first timestamps from them, and job.ts counts a live recording's seconds.
   */
  onData?: (buffers: readonly Buffer[], fetch: Fetch | null) => void;
  /**
   * The variant's BANDWIDTH, bits/s, if known: what the first requests are expected to bring before
   * any has come in (memory-budget.ts).
   */
  bitrate?: number | null;
}

/** What a track holds once downloaded: the file's size and where its discontinuity runs start. */
export interface TrackResult {
  bytes: number;
  segments: number;
  seconds: number;
  runStarts: number[];
}

/**
 * Identifies the plan, so a checkpoint is only trusted for the same playlist it was written for.
 * Query strings are left out: signed URLs get new tokens after a restart, the media stays the same.
 */
function fingerprintOf(plan: TrackPlan): string {
  const path = (url: string | undefined) => (url ? new URL(url).pathname : '');
  const first = plan.pieces[0];
  const last = plan.pieces.at(-1);
  return `${plan.pieces.length}|${plan.fetches.length}|${path(first?.url)}|${path(last?.url)}|${first?.msn}|${last?.msn}`;
}

/** Sends the first `bytes` of a resumed track file to the merge. */
async function replay(file: string, bytes: number, o: TrackOptions): Promise<void> {
  const stream = createReadStream(file, { start: 0, end: bytes - 1, highWaterMark: 1024 * 1024 });
  for await (const chunk of stream) {
    o.onData?.([chunk as Buffer], null);
    await o.sink?.write([chunk as Buffer]);
  }
}

/**
 * Where the track file starts: empty, or what its checkpoint says it holds, which then goes to the
 * merge first.
 */
async function resumeFrom(o: TrackOptions, fingerprint: string): Promise<TrackPosition> {
  const { plan, file } = o;
  const cp = o.resume ? o.resume.checkpoint : await readCheckpoint(file, fingerprint);
  if (!cp) {
    await rm(file, { force: true });
    return { fetches: 0, bytes: 0, segments: 0, lastMsn: -1, seconds: 0, runStarts: [] };
  }
  // The data is written before its checkpoint, so the file may hold more than the checkpoint says.
  await truncate(file, cp.bytes);
  for (let i = 0; i < cp.segments; i++) o.progress.addSegment();
  o.log.info(
    { track: o.label, fetches: cp.fetches, of: plan.fetches.length },
    'resuming track from checkpoint',
  );
  // The merge starts from the first byte: what the file already holds goes to it first.
  if ((o.sink || o.onData) && cp.bytes > 0) await replay(file, cp.bytes, o);
  return {
    // A resumed recording's plan starts after the file; a resumed download's plan includes it.
    fetches: o.resume ? 0 : cp.fetches,
    bytes: cp.bytes,
    segments: cp.segments,
    lastMsn: cp.lastMsn,
    seconds: cp.seconds,
    runStarts: [...cp.runStarts],
  };
}

/**
 * Downloads a track into its file through an OrderedWriter (ordered-writer.ts): resumed from its
 * checkpoint, requests refreshed when their signed URLs expire (url-refresh.ts), fewer at once when
 * the origin pushes back (pipeline/adaptive.ts).
 */
export async function downloadTrack(o: TrackOptions): Promise<TrackResult> {
  const fingerprint = o.resume?.fingerprint ?? fingerprintOf(o.plan);
  const from = await resumeFrom(o, fingerprint);
  // Segments a stopped run had on disk but not yet in the track file are fetched again.
  await removeStaleSpills(o.file);
  const out = await open(o.file, 'a');
  const inner = new AbortController();
  // Every request in flight and every retry back-off listens on it: up to the concurrency, not a leak.
  setMaxListeners(o.concurrency.max * 2 + 16, inner.signal);
  const onAbort = () => inner.abort();
  o.signal.addEventListener('abort', onAbort, { once: true });
  const limit = new AdaptiveConcurrency({ ...o.concurrency, ...limiterOptions(o.http.limiter) });
  const pool = new BufferPool();
  const budget = new SegmentBudget();
  const onThrottle = () => {
    const before = limit.limit;
    limit.onThrottle();
    if (limit.limit < before)
      o.log.info({ track: o.label, concurrency: limit.limit }, 'origin pushes back; fewer requests at once');
  };
  const urls = new FreshUrls(o);
  const context: FetchContext = { signal: inner.signal, urlsOf: urls.urlsOf, onThrottle, pool, budget };
  const writer = new OrderedWriter({
    ...{ plan: o.plan, file: o.file, out, from, fingerprint, limit, budget, pool, stop: inner },
    ...{ sink: o.sink, onData: o.onData, growth: o.growth, bitrate: o.bitrate },
    ...{ progress: o.progress, reportProgress: o.reportProgress },
    fetch: (f, ticket) => fetchWithRefresh(f, o, context, ticket, urls),
  });
  try {
    await writer.run();
  } catch (err) {
    if (o.signal.aborted || isAbortError(err)) throw new GabeError('CANCELLED', 'the job was cancelled');
    throw isGabeError(err) ? err : toGabeError(err);
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    await out.close();
    // Spilled segments that never got their turn (a failure, a cancel).
    await writer.discard();
  }
  const { bytes, segments, seconds, runStarts } = writer.written;
  return { bytes, segments, seconds, runStarts };
}
