import { setMaxListeners } from 'node:events';
import { createReadStream } from 'node:fs';
import { open, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { HttpClient } from '../../net/client.js';
import type { RetryPolicy } from '../../net/retry.js';
import { GabeError, isAbortError, isGabeError, originStatus, toGabeError } from '../../service/errors.js';
import type { Logger } from '../../service/log.js';
import { ensureSpace } from '../../storage/paths.js';
import { AdaptiveConcurrency } from '../adaptive.js';
import { BufferPool } from '../buffer-pool.js';
import type { TrackSink } from '../mux/sink.js';
import type { ProgressTracker } from '../progress.js';
import { readCheckpoint, type TrackCheckpoint, writeCheckpoint } from './checkpoint.js';
import type { KeyCache } from './key-cache.js';
import type { Growth } from './live-recording.js';
import { expectedBytes, SegmentBudget, type Ticket } from './memory-budget.js';
import { describe, type FetchContext, type Fetched, fetchPieces, type PieceUrls } from './segment-fetch.js';
import { removeStaleSpills, type SpillFile } from './segment-spill.js';
import type { Fetch, Piece, TrackPlan } from './track-plan.js';

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
   * Sees the track's bytes in file order, those a resume keeps first: job.ts reads the first
   * timestamps from them, and counts a live recording's seconds.
   */
  onData?: (buffers: readonly Buffer[], fetch: Fetch | null) => void;
  /**
   * The variant's BANDWIDTH, bits/s, if known: what the first requests are expected to bring before
   * any has come in (memory-budget.ts).
   */
  bitrate?: number | null;
}

/** Signed URLs that expired answer 401, 403, 404 or 410; a fresh playlist has working ones. */
const EXPIRY_STATUSES = new Set([401, 403, 404, 410]);
/** Longest time between two checkpoints of a track. */
const CHECKPOINT_MS = 200;
/** Free space is re-checked every so many segments written, against the bytes still to come. */
const SPACE_CHECK_SEGMENTS = 50;
/** Playlist reloads for one request before its failure is final. */
const MAX_REFRESHES_PER_FETCH = 2;

export function isExpiredUrlError(err: unknown): boolean {
  return EXPIRY_STATUSES.has(originStatus(err) ?? 0);
}

/** Pieces are matched across playlist reloads by media sequence number (RFC 8216 6.2.1). */
function anchorsOf(plan: TrackPlan): string[] {
  const anchors: string[] = new Array(plan.pieces.length);
  let next = '';
  for (let i = plan.pieces.length - 1; i >= 0; i--) {
    const p = plan.pieces[i]!;
    if (p.kind === 'segment') next = String(p.msn);
    anchors[i] = `${p.kind}:${p.kind === 'segment' ? p.msn : next}`;
  }
  return anchors;
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

function sizeOf(buffers: readonly Buffer[]): number {
  let n = 0;
  for (const b of buffers) n += b.length;
  return n;
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
 * Downloads a track: up to `concurrency` requests in flight, results written strictly in playlist
 * order into one file as soon as their turn comes (no second concatenation pass, and no file per
 * segment to hit open-file limits at 20,000 segments). Requests run at most a window ahead of the
 * writer, and bodies the memory budget cannot hold wait in spill files (memory-budget.ts), so memory stays
 * bounded when one early segment is slow, whatever the segments' size. After every write a
 * checkpoint records what the file holds, so a restarted job fetches only what is missing.
 */
export async function downloadTrack(o: TrackOptions): Promise<TrackResult> {
  const { plan, file } = o;
  const fingerprint = o.resume?.fingerprint ?? fingerprintOf(plan);
  const cp = o.resume ? o.resume.checkpoint : await readCheckpoint(file, fingerprint);
  let nextWrite = 0;
  let bytes = 0;
  let seconds = 0;
  let lastMsn = cp?.lastMsn ?? -1;
  const runStarts: number[] = cp ? [...cp.runStarts] : [];
  let lastRun = runStarts.length - 1;
  if (cp) {
    // The data is written before its checkpoint, so the file may hold more than the checkpoint says.
    await truncate(file, cp.bytes);
    // A resumed recording's plan starts after the file; a resumed download's plan includes it.
    nextWrite = o.resume ? 0 : cp.fetches;
    bytes = cp.bytes;
    seconds = cp.seconds;
    for (let i = 0; i < cp.segments; i++) o.progress.addSegment();
    o.log.info(
      { track: o.label, fetches: cp.fetches, of: plan.fetches.length },
      'resuming track from checkpoint',
    );
    // The merge starts from the first byte: what the file already holds goes to it first.
    if ((o.sink || o.onData) && cp.bytes > 0) await replay(file, cp.bytes, o);
  } else {
    await rm(file, { force: true });
  }
  // Segments a stopped run had on disk but not yet in the track file are fetched again.
  await removeStaleSpills(file);
  const fh = await open(file, 'a');
  const inner = new AbortController();
  // Every request in flight and every retry back-off listens on it: up to the concurrency, not a leak.
  setMaxListeners(o.concurrency.max * 2 + 16, inner.signal);
  const onAbort = () => inner.abort();
  o.signal.addEventListener('abort', onAbort, { once: true });
  const limit = new AdaptiveConcurrency(o.concurrency);
  const pool = new BufferPool();
  const budget = new SegmentBudget();
  const onThrottle = () => {
    const before = limit.limit;
    limit.onThrottle();
    if (limit.limit < before)
      o.log.info({ track: o.label, concurrency: limit.limit }, 'origin pushes back; fewer requests at once');
  };
  // Twice the concurrency: a slow segment at the head of the line does not stop the others at once.
  const windowSize = () => Math.max(8, limit.limit * 2);
  const fresh = new Map<number, PieceUrls>();
  const urlsOf = (p: Piece): PieceUrls =>
    fresh.get(p.index) ?? { url: p.url, keyUri: p.decrypt?.keyUri ?? null };
  let refreshing: Promise<void> | null = null;
  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      const next = await o.refresh!();
      // Computed now: a live plan has grown since the track started.
      const anchors = anchorsOf(plan);
      const byAnchor = new Map<string, Piece>();
      anchorsOf(next).forEach((a, i) => {
        byAnchor.set(a, next.pieces[i]!);
      });
      plan.pieces.forEach((p, i) => {
        const q = byAnchor.get(anchors[i]!);
        if (q) fresh.set(p.index, { url: q.url, keyUri: q.decrypt?.keyUri ?? null });
      });
      o.log.info({ track: o.label }, 'reloaded the playlist for fresh segment URLs');
    })().finally(() => {
      refreshing = null;
    });
    return refreshing;
  };
  const context: FetchContext = { signal: inner.signal, urlsOf, onThrottle, pool, budget };
  /** A fetch whose URL expired gets a reloaded playlist's URL and tries again. */
  const fetchWithRefresh = async (f: Fetch, ticket: Ticket): Promise<Fetched> => {
    const signal = inner.signal;
    for (let round = 0; ; round++) {
      const before = f.pieces.map((p) => JSON.stringify(urlsOf(p))).join();
      try {
        return await fetchPieces(f, o, context, ticket);
      } catch (err) {
        const expired = isExpiredUrlError(err) || isExpiredUrlError((err as { cause?: unknown }).cause);
        if (!o.refresh || !expired || round >= MAX_REFRESHES_PER_FETCH || signal.aborted) throw err;
        await refresh().catch((reloadErr: unknown) => {
          o.log.warn({ err: (reloadErr as Error).message }, 'reloading the playlist failed');
          throw err;
        });
        if (!fresh.has(f.pieces[0]!.index)) {
          throw new GabeError(
            'SEGMENT',
            `${describe(f.pieces[0]!, o.label)} expired and is no longer listed in the reloaded playlist`,
            { cause: err },
          );
        }
        // Same URLs after a reload: the resource is really gone, not expired.
        if (f.pieces.map((p) => JSON.stringify(urlsOf(p))).join() === before) throw err;
      }
    }
  };
  /** Fetched, waiting for their turn: the media and the share of the memory budget it holds. */
  const ready = new Map<number, { got: Fetched; ticket: Ticket }>();
  const firstWrite = nextWrite;
  const firstBytes = bytes;
  /** Bytes per fetch so far (this run), to guess what the requests in flight will bring. */
  const averageFetch = () => (nextWrite > firstWrite ? (bytes - firstBytes) / (nextWrite - firstWrite) : 0);
  /** A fetch's media held in memory into the file and the merge, which take the same buffers at once. */
  const writeBuffers = async (buffers: Buffer[], fetch: Fetch): Promise<number> => {
    o.onData?.(buffers, fetch);
    const [, copied] = await Promise.all([
      buffers.length === 1 ? fh.write(buffers[0]!) : fh.writev(buffers),
      o.sink?.write(buffers),
    ]);
    // On disk, and copied by the merge (or no merge): the next segments may use the buffers.
    if (!o.sink || copied === true) pool.release(buffers);
    return sizeOf(buffers);
  };
  /** A spilled fetch, a chunk at a time; onData learns the fetch with its last chunk. */
  const writeSpill = async (spill: SpillFile, fetch: Fetch): Promise<number> => {
    if (spill.size === 0) o.onData?.([], fetch);
    let done = 0;
    try {
      for await (const chunk of spill.read((n) => pool.take(n))) {
        done += chunk.length;
        o.onData?.([chunk], done === spill.size ? fetch : null);
        const [, copied] = await Promise.all([fh.write(chunk), o.sink?.write([chunk])]);
        if (!o.sink || copied === true) pool.release([chunk]);
      }
    } finally {
      await spill.remove();
    }
    return spill.size;
  };
  let nextStart = nextWrite;
  let inFlight = 0;
  let segments = cp?.segments ?? 0;
  let lastCheckpoint = 0;

  try {
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      let writing = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        inner.abort();
        reject(err);
      };
      const drain = async () => {
        if (writing || failed) return;
        writing = true;
        try {
          while (ready.has(nextWrite) && !failed) {
            const { got, ticket } = ready.get(nextWrite)!;
            ready.delete(nextWrite);
            const fetch = plan.fetches[nextWrite]!;
            // Where each discontinuity run starts in the file (a concat merge cuts the file there).
            let offset = bytes;
            for (const [j, p] of fetch.pieces.entries()) {
              if (p.run > lastRun) {
                runStarts.push(offset);
                lastRun = p.run;
              }
              if (fetch.pieces.length > 1) offset += (got.spill ? got.sizes[j] : got.buffers[j]?.length) ?? 0;
            }
            const size = got.spill
              ? await writeSpill(got.spill, fetch)
              : await writeBuffers(got.buffers, fetch);
            budget.release(ticket);
            bytes += size;
            for (const p of fetch.pieces) {
              if (p.kind === 'segment') {
                segments++;
                seconds += p.duration;
                lastMsn = p.msn;
                o.progress.addSegment();
              }
            }
            nextWrite++;
            // A checkpoint per write would cost a file write per segment (20,000 on long streams); every
            // CHECKPOINT_MS bounds what a crash makes us fetch again to the segments of that interval.
            const now = Date.now();
            if (now - lastCheckpoint >= CHECKPOINT_MS || nextWrite === plan.fetches.length) {
              lastCheckpoint = now;
              const checkpoint: TrackCheckpoint = {
                fingerprint,
                fetches: nextWrite,
                bytes,
                segments,
                lastMsn,
                seconds,
                runStarts,
              };
              await writeCheckpoint(file, checkpoint);
            }
            o.reportProgress();
            if (segments % SPACE_CHECK_SEGMENTS === 0 && segments > 0) {
              // Estimate what is still to come from the average segment so far.
              const left = (plan.segmentCount - segments) * (bytes / segments);
              await ensureSpace(path.dirname(file), left * 1.5);
            }
          }
        } catch (err) {
          fail(err);
        } finally {
          writing = false;
        }
        if (!failed) launch();
      };
      const launch = () => {
        while (
          !failed &&
          inFlight < limit.limit &&
          nextStart < plan.fetches.length &&
          nextStart < nextWrite + windowSize()
        ) {
          const f = plan.fetches[nextStart]!;
          const expected = expectedBytes(f, averageFetch(), o.bitrate ?? null);
          if (!budget.mayLaunch(expected, nextStart === nextWrite)) break;
          const i = nextStart++;
          inFlight++;
          const ticket = budget.launch(expected);
          fetchWithRefresh(f, ticket).then(
            (got) => {
              inFlight--;
              if (failed) {
                budget.release(ticket);
                void got.spill?.remove();
                return;
              }
              limit.onFetch(got.spill ? got.spill.size : sizeOf(got.buffers));
              ready.set(i, { got, ticket });
              void drain();
            },
            (err: unknown) => {
              inFlight--;
              budget.release(ticket);
              fail(err);
            },
          );
        }
        const more = o.growth !== undefined && !o.growth.ended;
        if (nextWrite === plan.fetches.length && inFlight === 0 && !writing && !more) resolve();
      };
      o.growth?.onChange(() => {
        if (!failed) launch();
      });
      launch();
    });
  } catch (err) {
    if (o.signal.aborted || isAbortError(err)) throw new GabeError('CANCELLED', 'the job was cancelled');
    throw isGabeError(err) ? err : toGabeError(err);
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    await fh.close();
    // Spilled segments that never got their turn (a failure, a cancel).
    await Promise.all([...ready.values()].map(({ got }) => got.spill?.remove()));
  }
  return { bytes, segments, seconds, runStarts };
}
