import { open } from 'node:fs/promises';
import path from 'node:path';
import type { HttpClient, HttpResponse } from '../../net/client.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../../net/retry.js';
import {
  FileChangedError,
  GabeError,
  HttpStatusError,
  isAbortError,
  originStatus,
} from '../../service/errors.js';
import { ensureSpace } from '../../storage/paths.js';
import { AdaptiveConcurrency, THROTTLE_STATUSES } from '../adaptive.js';
import type { DownloadContext } from '../context.js';
import { CheckpointWriter, writeAt } from './part-file.js';
import {
  checkpointOf,
  describeChange,
  missing,
  type PieceState,
  parseContentRange,
  type RangePlan,
  type ResourceId,
  resourceIdOf,
  type Timing,
} from './range-plan.js';

/** Free space is re-checked after this many bytes, so a disk that other writers fill is noticed early. */
const SPACE_CHECK_BYTES = 32 * 1024 * 1024;
/** What one job buffers at most in all, in chunk_size units (see flushAt). */
const BUFFER_CHUNKS = 4;
const MIN_FLUSH_BYTES = 64 * 1024;
/** A transfer's rate is trusted once it has run this long. */
const RATE_AFTER_MS = 200;

export interface RangedOptions {
  ctx: DownloadContext;
  http: HttpClient;
  /** The URL that answered the first request, after redirects: pieces go straight there. */
  url: string;
  /** The part file, already `plan.size` bytes long (sparse where nothing is written yet). */
  file: string;
  id: ResourceId;
  plan: RangePlan;
  connections: number;
  /** Connections are added while throughput grows, up to this many (pipeline/adaptive.ts). */
  maxConnections?: number;
  /** Aborts every connection at once: cancellation (linked to ctx.signal) or a failed piece. */
  controller: AbortController;
  /** The first request's answer, already checked: it serves `piece` up to `end` (exclusive). */
  first: { res: HttpResponse; piece: PieceState; end: number; requestMs: number };
}

/**
 * Fetches every missing byte of the plan over up to `connections` connections, each piece streamed
 * into the part file with positioned writes through a buffer of at most chunk_size (and about
 * BUFFER_CHUNKS × chunk_size for all connections together), whatever the file size. Each piece
 * retries on its own (the policy of net/retry.ts) from the byte it reached; a response that shows
 * another version of the resource stops everything with a restart error.
 */
export async function downloadRanges(o: RangedOptions): Promise<void> {
  const { ctx, http, plan, controller } = o;
  const { signal } = controller;
  // chunk_size bounds one write and one connection's buffer; the job as a whole buffers at most
  // BUFFER_CHUNKS × chunk_size. Sixteen connections holding a full 1 MiB chunk each keep buffers
  // alive long enough to reach V8's old generation: measured, `gabe serve` peaked 30 MB higher
  // (165 vs 137 MB) than with 256 KiB each, at the same speed (a write per 256 KiB is still few
  // syscalls).
  const flushAt = Math.min(
    ctx.config.chunk_size,
    Math.max(MIN_FLUSH_BYTES, Math.floor((BUFFER_CHUNKS * ctx.config.chunk_size) / o.connections)),
  );
  const policy = { ...DEFAULT_RETRY_POLICY, maxRetries: ctx.config.max_retries };
  // Like HLS segments (pipeline/adaptive.ts): a CDN caps each connection, so more of them buy speed up to a
  // point only a measurement finds. Each buffer written counts as one fetch.
  const limit = new AdaptiveConcurrency({ initial: o.connections, max: o.maxConnections ?? o.connections });
  let workers = 0;
  let requestMs = o.first.requestMs;
  let sinceSpaceCheck = 0;
  const timing = (): Timing => {
    let sum = 0;
    let n = 0;
    for (const p of plan.pieces) {
      if (p.owned && p.rateBps) {
        sum += p.rateBps;
        n++;
      }
    }
    return { requestMs, meanRateBps: n > 0 ? sum / n : null };
  };
  const checkpoint = new CheckpointWriter(`${o.file}.json`, () => JSON.stringify(checkpointOf(o.id, plan)));
  const fh = await open(o.file, 'r+');

  /** Checks a piece's 206 against what was asked and the resource we started with. */
  const check = (res: HttpResponse, start: number, askedEnd: number): number => {
    const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : null;
    const fail = (err: GabeError): never => {
      res.body.destroy();
      throw err;
    };
    if (res.status !== 206)
      fail(new FileChangedError(`the server answered a byte range with status ${res.status}`));
    if (!range) {
      return fail(
        new GabeError('INTEGRITY', `a 206 answer without a valid Content-Range from ${o.url}`, {
          retryable: true,
        }),
      );
    }
    const change = describeChange(o.id, resourceIdOf(range.total ?? o.id.size, res.headers));
    if (change) fail(new FileChangedError(change));
    // A shorter answer than asked is allowed (some servers cap ranges): the loop asks for the rest.
    if (range.start !== start || range.end > askedEnd || range.end < start) {
      fail(
        new GabeError(
          'INTEGRITY',
          `asked ${o.url} for bytes ${start}-${askedEnd}, got ${range.start}-${range.end}`,
          { retryable: true },
        ),
      );
    }
    return range.end + 1;
  };

  /** Reads one response into the piece, up to `end` or to where a split shortened the piece. */
  const stream = async (piece: PieceState, res: HttpResponse, end: number): Promise<void> => {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const from = piece.received;
    const began = performance.now();
    piece.rateBps = null;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const buffers = pending;
      const n = pendingBytes;
      pending = [];
      pendingBytes = 0;
      await writeAt(fh, buffers, piece.written);
      piece.written += n;
      limit.onFetch(n);
      grow();
      checkpoint.soon();
      ctx.reportProgress();
      sinceSpaceCheck += n;
      if (sinceSpaceCheck >= SPACE_CHECK_BYTES) {
        sinceSpaceCheck = 0;
        await ensureSpace(path.dirname(o.file), plan.missingBytes);
      }
    };
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const room = Math.min(piece.end, end) - piece.received;
        if (room <= 0) break;
        const b = chunk.length > room ? chunk.subarray(0, room) : chunk;
        pending.push(b);
        pendingBytes += b.length;
        piece.received += b.length;
        ctx.progress.addBytes(b.length);
        // Throttled by the caller: progress moves with the bytes, not only with the writes.
        ctx.reportProgress();
        const elapsed = performance.now() - began;
        if (elapsed >= RATE_AFTER_MS) piece.rateBps = ((piece.received - from) * 1000) / elapsed;
        if (pendingBytes >= flushAt) await flush();
        // Shortened by a split: the rest belongs to another piece. Leaving the loop destroys the
        // body and so this socket; a response read to its natural end keeps its socket alive.
        if (piece.received >= piece.end && piece.end < end) break;
      }
    } finally {
      // What arrived is kept even when the transfer broke, so the retry resumes after it.
      await flush();
    }
    const want = Math.min(piece.end, end);
    if (piece.received < want) {
      throw new GabeError(
        'TRUNCATED',
        `bytes ${from}-${end - 1} of ${o.url} ended after ${piece.received - from} bytes`,
      );
    }
  };

  const fetchPiece = async (piece: PieceState, first?: { res: HttpResponse; end: number }) => {
    let inHand = first;
    await withRetry(
      async () => {
        while (piece.received < piece.end) {
          let res: HttpResponse;
          let end: number;
          if (inHand) {
            ({ res, end } = inHand);
            inHand = undefined;
          } else {
            const start = piece.received;
            const askedEnd = piece.end - 1;
            const sent = performance.now();
            try {
              res = await http.get(o.url, { signal, range: { start, end: askedEnd } });
            } catch (err) {
              if (err instanceof HttpStatusError && err.status === 416) {
                throw new FileChangedError('it is shorter now (HTTP 416 for a byte range inside it)');
              }
              throw err;
            }
            requestMs = 0.7 * requestMs + 0.3 * (performance.now() - sent);
            end = check(res, start, askedEnd);
          }
          await stream(piece, res, end);
        }
      },
      policy,
      {
        signal,
        onRetry: (err, attempt, delayMs) => {
          // Waiting: an idle connection may take the upper half of this piece meanwhile.
          piece.rateBps = 0;
          if (THROTTLE_STATUSES.has(originStatus(err) ?? 0)) limit.onThrottle();
          ctx.onRetry?.();
          ctx.log.warn(
            { err: err.message, attempt, delayMs, from: piece.received, to: piece.end },
            'byte range failed; retrying from the byte it reached',
          );
        },
      },
    );
  };

  const worker = async (piece: PieceState | null, first?: { res: HttpResponse; end: number }) => {
    let current = piece;
    let inHand = first;
    while (current && !signal.aborted) {
      const from = current.received;
      const began = performance.now();
      await fetchPiece(current, inHand);
      ctx.log.debug(
        { from, to: current.end, ms: Math.round(performance.now() - began) },
        'byte range complete',
      );
      inHand = undefined;
      plan.release(current);
      await checkpoint.now();
      // Beyond the limit (an origin that pushed back): this connection stops here.
      current = workers > limit.limit ? null : plan.take(timing());
    }
    workers--;
  };
  const running: Promise<void>[] = [];
  const start = (piece: PieceState | null, first?: { res: HttpResponse; end: number }) => {
    workers++;
    running.push(worker(piece, first).catch(fail));
  };
  /** Opens connections up to the limit while there is a piece to give them. */
  const grow = () => {
    while (workers < limit.limit && failure === null && !signal.aborted) {
      const piece = plan.take(timing());
      if (!piece) return;
      start(piece);
    }
  };

  let failure: unknown = null;
  const fail = (err: unknown) => {
    if (failure !== null) return;
    failure = err;
    controller.abort();
  };
  try {
    // Claims nothing yet; written beside the first requests rather than before them.
    checkpoint.soon();
    const first = o.first.piece;
    first.owned = true;
    start(first, { res: o.first.res, end: o.first.end });
    for (let i = 1; i < o.connections; i++) start(plan.take(timing()));
    // Connections added later join the list while the first ones run.
    for (let i = 0; i < running.length; i++) await running[i];
  } finally {
    checkpoint.stop();
    // Interrupted (shutdown, a failed piece): record the last bytes written, for the next start.
    if (failure !== null && !(failure instanceof FileChangedError)) await checkpoint.now().catch(() => {});
    await checkpoint.settled();
    await fh.close();
    // Unread when the start failed; a no-op when its worker read it.
    o.first.res.body.destroy();
  }
  if (failure !== null) {
    if (ctx.signal.aborted || (isAbortError(failure) && !(failure instanceof FileChangedError))) {
      throw new GabeError('CANCELLED', 'the job was cancelled');
    }
    throw failure;
  }
  if (checkpoint.failure) throw checkpoint.failure;
  const left = plan.pieces.find((p) => missing(p) > 0 || p.written < p.end);
  if (left) throw new GabeError('INTERNAL', `bytes ${left.written}-${left.end - 1} were never fetched`);
}
