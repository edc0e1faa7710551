import { open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GabeError, isAbortError, isGabeError, toGabeError } from '../errors.js';
import { decryptAes128, type KeyCache } from '../hls/aes.js';
import type { MediaPlaylist } from '../hls/model.js';
import type { Logger } from '../log.js';
import type { HttpClient } from '../net/http.js';
import { type RetryPolicy, withRetry } from '../net/retry.js';
import { ensureSpace } from '../storage/paths.js';
import { type Fetch, type Piece, planTrack, type TrackPlan } from './plan.js';
import type { ProgressTracker } from './progress.js';

export interface TrackOptions {
  http: HttpClient;
  plan: TrackPlan;
  /** The track file: pieces are appended to it in playlist order. */
  file: string;
  concurrency: number;
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
  /** Re-fetches the track's media playlist (fresh signed URLs) when segments or keys expire. */
  refresh?: () => Promise<MediaPlaylist>;
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

/** Durable progress of one track: how many fetches are in the file, and how many bytes that is. */
interface Checkpoint {
  fingerprint: string;
  fetches: number;
  bytes: number;
  segments: number;
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

async function readCheckpoint(file: string, fingerprint: string): Promise<Checkpoint | null> {
  try {
    const cp = JSON.parse(await readFile(`${file}.json`, 'utf8')) as Checkpoint;
    return cp.fingerprint === fingerprint ? cp : null;
  } catch {
    return null;
  }
}

function looksLikeHtml(data: Buffer): boolean {
  const head = data.subarray(0, 64).toString('latin1').trimStart().toLowerCase();
  return head.startsWith('<!doctype html') || head.startsWith('<html') || head.startsWith('<?xml');
}

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
): Promise<Buffer[]> {
  const range = f.range ? { start: f.range.offset, end: f.range.offset + f.range.length - 1 } : undefined;
  const url = urlsOf(f.pieces[0]!).url;
  const data = await withRetry(
    async () => {
      const { data, res } = await o.http.getBuffer(url, { signal, range });
      o.progress.addBytes(data.length);
      if (f.range && res.status === 200) {
        if (data.length < f.range.offset + f.range.length) {
          throw new GabeError('SEGMENT', `${url} is ${data.length} bytes, shorter than its byte range`);
        }
        return data.subarray(f.range.offset, f.range.offset + f.range.length);
      }
      if (f.range && data.length !== f.range.length) {
        throw new GabeError(
          'TRUNCATED',
          `${f.url}: got ${data.length} bytes of a ${f.range.length}-byte range`,
        );
      }
      return data;
    },
    o.policy,
    {
      signal,
      onRetry: (err, attempt, delayMs) => {
        o.onRetry?.();
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
  const out: Buffer[] = [];
  let offset = 0;
  for (const piece of f.pieces) {
    let bytes = f.pieces.length === 1 ? data : data.subarray(offset, offset + piece.range!.length);
    offset += bytes.length;
    if (piece.decrypt) {
      const key = await o.keys.get(urlsOf(piece).keyUri ?? piece.decrypt.keyUri);
      bytes = decryptAes128(bytes, key, piece.decrypt.iv, describe(piece, o.label));
    }
    if (looksLikeHtml(bytes)) {
      throw new GabeError(
        'SEGMENT',
        `${describe(piece, o.label)} is an HTML page, not media (${urlsOf(piece).url})`,
      );
    }
    out.push(bytes);
  }
  return out;
}

/**
 * Downloads a track: up to `concurrency` requests in flight, results written strictly in playlist
 * order into one file as soon as their turn comes (no second concatenation pass, and no file per
 * segment to hit open-file limits at 20,000 segments). Requests run at most a window ahead of the
 * writer, so memory stays bounded when one early segment is slow. After every write a checkpoint
 * records what the file holds, so a restarted job fetches only what is missing.
 */
export async function downloadTrack(o: TrackOptions): Promise<{ bytes: number }> {
  const { plan, file } = o;
  const fingerprint = fingerprintOf(plan);
  const cp = await readCheckpoint(file, fingerprint);
  let nextWrite = 0;
  let bytes = 0;
  if (cp) {
    // The data is written before its checkpoint, so the file may hold more than the checkpoint says.
    await truncate(file, cp.bytes);
    nextWrite = cp.fetches;
    bytes = cp.bytes;
    for (let i = 0; i < cp.segments; i++) o.progress.addSegment();
    o.log.info(
      { track: o.label, fetches: cp.fetches, of: plan.fetches.length },
      'resuming track from checkpoint',
    );
  } else {
    await rm(file, { force: true });
  }
  const fh = await open(file, 'a');
  const inner = new AbortController();
  const onAbort = () => inner.abort();
  o.signal.addEventListener('abort', onAbort, { once: true });
  const window = Math.max(8, o.concurrency * 4);
  const anchors = anchorsOf(plan);
  const fresh = new Map<number, PieceUrls>();
  const urlsOf = (p: Piece): PieceUrls =>
    fresh.get(p.index) ?? { url: p.url, keyUri: p.decrypt?.keyUri ?? null };
  let refreshing: Promise<void> | null = null;
  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      const media = await o.refresh!();
      const next = planTrack(media);
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
        return await fetchPieces(f, o, signal, urlsOf);
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
            if (buffers.length === 1) await fh.write(buffers[0]!);
            else await fh.writev(buffers);
            for (const b of buffers) bytes += b.length;
            for (const p of plan.fetches[nextWrite]!.pieces) {
              if (p.kind === 'segment') {
                segments++;
                o.progress.addSegment();
              }
            }
            nextWrite++;
            // A checkpoint per write would cost a file write per segment (20,000 on long streams); every
            // CHECKPOINT_MS bounds what a crash makes us fetch again to the segments of that interval.
            const now = Date.now();
            if (now - lastCheckpoint >= CHECKPOINT_MS || nextWrite === plan.fetches.length) {
              lastCheckpoint = now;
              const checkpoint: Checkpoint = { fingerprint, fetches: nextWrite, bytes, segments };
              await writeFile(`${file}.json`, JSON.stringify(checkpoint));
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
          inFlight < o.concurrency &&
          nextStart < plan.fetches.length &&
          nextStart < nextWrite + window
        ) {
          const i = nextStart++;
          inFlight++;
          fetchWithRefresh(plan.fetches[i]!, inner.signal).then(
            (buffers) => {
              inFlight--;
              ready.set(i, buffers);
              void drain();
            },
            (err: unknown) => {
              inFlight--;
              fail(err);
            },
          );
        }
        if (nextWrite === plan.fetches.length && inFlight === 0 && !writing) resolve();
      };
      launch();
    });
  } catch (err) {
    if (o.signal.aborted || isAbortError(err)) throw new GabeError('CANCELLED', 'the job was cancelled');
    throw isGabeError(err) ? err : toGabeError(err);
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    await fh.close();
  }
  return { bytes };
}
