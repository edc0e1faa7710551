import { setMaxListeners } from 'node:events';
import { createReadStream } from 'node:fs';
import { open, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import { GabeError, isAbortError, isGabeError, toGabeError } from '../errors.js';
import { decryptAes128, type KeyCache } from '../hls/aes.js';
import type { Logger } from '../log.js';
import { detectDisguise } from '../media/disguise.js';
import { textKind } from '../media/sniff.js';
import type { HttpClient } from '../net/http.js';
import { type RetryPolicy, withRetry } from '../net/retry.js';
import { ensureSpace } from '../storage/paths.js';
import { AdaptiveConcurrency, THROTTLE_STATUSES } from './concurrency.js';
import type { Growth } from './live.js';
import type { TrackSink } from './merger.js';
import type { Fetch, Piece, TrackPlan } from './plan.js';
import { BufferPool } from './pool.js';
import type { ProgressTracker } from './progress.js';
import { readCheckpoint, type TrackCheckpoint, writeCheckpoint } from './track-checkpoint.js';

export interface TrackOptions {
  http: HttpClient;
  plan: TrackPlan;
  /** The track file: pieces are appended to it in playlist order. */
  file: string;
  /** Requests in flight: `initial` at first, raised while throughput grows up to `max` (concurrency.ts). */
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
   * Sees the track's bytes in file order, those a resume keeps first: hls.ts reads the first
   * timestamps from them, and counts a live recording's seconds.
   */
  onData?: (buffers: readonly Buffer[], fetch: Fetch | null) => void;
}

/** Signed URLs that expired answer 401, 403, 404 or 410; a fresh playlist has working ones. */
const EXPIRY_STATUSES = new Set([401, 403, 404, 410]);
/** Longest time between two checkpoints of a track. */
const CHECKPOINT_MS = 200;
/** Free space is re-checked every so many segments written, against the bytes still to come. */
const SPACE_CHECK_SEGMENTS = 50;
/** Playlist reloads for one request before its failure is final. */
const MAX_REFRESHES_PER_FETCH = 2;
/**
 * Segments held in memory (fetched, waiting for an earlier one, or in flight) at most, in bytes: the
 * window in segments bounds memory for small segments, this bounds it for large ones. The segment
 * next in line is always fetched, so a single huge segment still goes through. 32 MB is about three
 * times what is in flight at 120 MB/s with 100 ms per request: against the bench origin it downloads
 * as fast as 48 MB did, 16 MB cost 15% of the speed.
 */
const MAX_BUFFERED_BYTES = 32 * 1024 * 1024;

export function isExpiredUrlError(err: unknown): boolean {
  return isGabeError(err) && EXPIRY_STATUSES.has(Number(err.details?.['status']));
}

/** Current URLs of a piece: the plan's, or newer ones from a reloaded playlist. */
interface PieceUrls {
  url: string;
  keyUri: string | null;
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

const TEXT_NAMES = { html: 'an HTML page', playlist: 'an HLS playlist' } as const;

function describe(piece: Piece, label: string): string {
  return piece.kind === 'init'
    ? `the ${label} init section (${piece.url})`
    : `${label} segment ${piece.index} (media sequence ${piece.msn})`;
}

/**
 * Fetches one request's bytes (possibly several coalesced byte ranges), checks and decrypts each piece.
 * A server that ignores Range answers 200 with the whole resource: the ranges are cut out of it.
 */
async function fetchPieces(
  f: Fetch,
  o: TrackOptions,
  signal: AbortSignal,
  urlsOf: (p: Piece) => PieceUrls,
  onThrottle: () => void,
  pool: BufferPool,
): Promise<Buffer[]> {
  const range = f.range ? { start: f.range.offset, end: f.range.offset + f.range.length - 1 } : undefined;
  const url = urlsOf(f.pieces[0]!).url;
  const alloc = (size: number) => pool.take(size);
  const chunks = await withRetry(
    async () => {
      const { chunks, length, res } = await o.http.getChunks(url, { signal, range, alloc });
      o.progress.addBytes(length);
      // A 0-byte answer with status 200 is a failed segment (an overloaded edge), never an empty one.
      if (length === 0) throw new GabeError('TRUNCATED', `${url} answered an empty body (0 bytes)`);
      if (f.range && res.status === 200) {
        if (length < f.range.offset + f.range.length) {
          throw new GabeError('SEGMENT', `${url} is ${length} bytes, shorter than its byte range`);
        }
        return [Buffer.concat(chunks, length).subarray(f.range.offset, f.range.offset + f.range.length)];
      }
      if (f.range && length !== f.range.length) {
        throw new GabeError('TRUNCATED', `${f.url}: got ${length} bytes of a ${f.range.length}-byte range`);
      }
      return chunks;
    },
    o.policy,
    {
      signal,
      onRetry: (err, attempt, delayMs) => {
        o.onRetry?.();
        if (THROTTLE_STATUSES.has(Number(err.details?.['status']))) onThrottle();
        o.log.warn({ url, err: err.message, attempt, delayMs }, 'segment fetch failed; retrying');
      },
    },
  ).catch((raw: unknown) => {
    const err = toGabeError(raw);
    if (err.kind === 'CANCELLED' || err.kind === 'SEGMENT') throw err;
    const status = err.details?.['status'];
    throw new GabeError(
      'SEGMENT',
      `${describe(f.pieces[0]!, o.label)} failed${status ? ` with HTTP ${status}` : ''}: ${err.message}`,
      { cause: err, details: { status, url } },
    );
  });
  const only = f.pieces.length === 1 ? f.pieces[0]! : null;
  if (only && !only.decrypt) {
    // The common case, a whole clear segment: its chunks go to disk as they came.
    checkMedia(chunks, only, o, urlsOf);
    return undisguise(chunks, o);
  }
  const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const out: Buffer[] = [];
  let offset = 0;
  for (const piece of f.pieces) {
    let bytes = only ? data : data.subarray(offset, offset + piece.range!.length);
    offset += bytes.length;
    if (piece.decrypt) {
      const key = await o.keys.get(urlsOf(piece).keyUri ?? piece.decrypt.keyUri);
      bytes = decryptAes128(bytes, key, piece.decrypt.iv, describe(piece, o.label));
    }
    checkMedia([bytes], piece, o, urlsOf);
    out.push(...undisguise([bytes], o));
  }
  return out;
}

/**
 * MPEG-TS behind a fake image header (PNG, JPEG, GIF, BMP bytes before the first sync byte, which
 * ffmpeg would take for a picture): the header is cut off. Real TS (0x47 first) costs one comparison.
 */
function undisguise(chunks: Buffer[], o: TrackOptions): Buffer[] {
  const first = chunks[0];
  if (!first || o.plan.fmp4 || first[0] === 0x47) return chunks;
  // A fake header is small; a first chunk shorter than a few packets is joined with the rest to look.
  const head = first.length >= 16 * 1024 || chunks.length === 1 ? first : Buffer.concat(chunks);
  const found = detectDisguise(head);
  if (!found) return chunks;
  if (!o.disguiseLogged) {
    o.disguiseLogged = true;
    o.log.info(
      { track: o.label, kind: found.kind, bytes: found.offset },
      'segments carry a fake image header; cut off',
    );
  }
  let skip = found.offset;
  const out: Buffer[] = [];
  for (const c of chunks) {
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    out.push(skip > 0 ? c.subarray(skip) : c);
    skip = 0;
  }
  return out;
}

function checkMedia(chunks: Buffer[], piece: Piece, o: TrackOptions, urlsOf: (p: Piece) => PieceUrls): void {
  const first = chunks[0] ?? Buffer.alloc(0);
  const head = first.length >= 64 || chunks.length === 1 ? first : Buffer.concat(chunks).subarray(0, 64);
  // Not JSON: a byte-range slice may start on any byte, '{' and '[' included; markup and #EXTM3U are
  // unambiguous enough.
  const kind = textKind(head);
  if (kind === 'html' || kind === 'playlist') {
    throw new GabeError(
      'SEGMENT',
      `${describe(piece, o.label)} is ${TEXT_NAMES[kind]}, not media (${urlsOf(piece).url})`,
    );
  }
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
 * writer, so memory stays bounded when one early segment is slow. After every write a checkpoint
 * records what the file holds, so a restarted job fetches only what is missing.
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
  const fh = await open(file, 'a');
  const inner = new AbortController();
  // Every request in flight and every retry back-off listens on it: up to the concurrency, not a leak.
  setMaxListeners(o.concurrency.max * 2 + 16, inner.signal);
  const onAbort = () => inner.abort();
  o.signal.addEventListener('abort', onAbort, { once: true });
  const limit = new AdaptiveConcurrency(o.concurrency);
  const pool = new BufferPool();
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
  /** A fetch whose URL expired gets a reloaded playlist's URL and tries again. */
  const fetchWithRefresh = async (f: Fetch, signal: AbortSignal): Promise<Buffer[]> => {
    for (let round = 0; ; round++) {
      const before = f.pieces.map((p) => JSON.stringify(urlsOf(p))).join();
      try {
        return await fetchPieces(f, o, signal, urlsOf, onThrottle, pool);
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
  const ready = new Map<number, Buffer[]>();
  let readyBytes = 0;
  const firstWrite = nextWrite;
  const firstBytes = bytes;
  /** Bytes per fetch so far (this run), to guess what the requests in flight will bring. */
  const averageFetch = () => (nextWrite > firstWrite ? (bytes - firstBytes) / (nextWrite - firstWrite) : 0);
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
            const buffers = ready.get(nextWrite)!;
            ready.delete(nextWrite);
            const fetch = plan.fetches[nextWrite]!;
            const size = sizeOf(buffers);
            readyBytes -= size;
            o.onData?.(buffers, fetch);
            // Where each discontinuity run starts in the file (a concat merge cuts the file there).
            let offset = bytes;
            for (const [j, p] of fetch.pieces.entries()) {
              if (p.run > lastRun) {
                runStarts.push(offset);
                lastRun = p.run;
              }
              if (fetch.pieces.length > 1) offset += buffers[j]?.length ?? 0;
            }
            // The file (for resuming) and the merge take the same buffers at the same time.
            const [, copied] = await Promise.all([
              buffers.length === 1 ? fh.write(buffers[0]!) : fh.writev(buffers),
              o.sink?.write(buffers),
            ]);
            // On disk, and copied by the merge (or no merge): the next segments may use the buffers.
            if (!o.sink || copied === true) pool.release(buffers);
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
          nextStart < nextWrite + windowSize() &&
          (nextStart === nextWrite || readyBytes + inFlight * averageFetch() < MAX_BUFFERED_BYTES)
        ) {
          const i = nextStart++;
          inFlight++;
          fetchWithRefresh(plan.fetches[i]!, inner.signal).then(
            (buffers) => {
              inFlight--;
              const size = sizeOf(buffers);
              limit.onFetch(size);
              readyBytes += size;
              ready.set(i, buffers);
              void drain();
            },
            (err: unknown) => {
              inFlight--;
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
  }
  return { bytes, segments, seconds, runStarts };
}
