import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';
import type { HttpClient, HttpResponse } from '../../net/client.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetry } from '../../net/retry.js';
import {
  FileChangedError,
  GabeError,
  HttpStatusError,
  isAbortError,
  originStatus,
} from '../../service/errors.js';
import { ensureSpace, SPACE_CHECK_BYTES } from '../../storage/paths.js';
import { AdaptiveConcurrency, limiterOptions, THROTTLE_STATUSES } from '../adaptive.js';
import type { DownloadContext } from '../context.js';
import { CheckpointWriter } from './part-file.js';
import { PieceWriter } from './piece-writer.js';
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

/** What one job buffers at most in all, in chunk_size units (see flushAt). */
const BUFFER_CHUNKS = 4;
const MIN_FLUSH_BYTES = 64 * 1024;

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
  /** The first request's answer, checked, serving `piece` to `end` (exclusive); none for a clip. */
  first?: { res: HttpResponse; piece: PieceState; end: number; requestMs: number } | undefined;
}

/** A response a connection has in hand for its piece, served up to `end` (exclusive). */
interface InHand {
  res: HttpResponse;
  end: number;
}

/** Opens the part file and runs a RangedDownload over it. */
export async function downloadRanges(o: RangedOptions): Promise<void> {
  await new RangedDownload(o, await open(o.file, 'r+')).run();
}

/**
 * Fetches every missing byte of the plan over up to `connections` connections, each piece streamed
 * into the part file with positioned writes through a buffer of at most chunk_size (and about
 * BUFFER_CHUNKS × chunk_size for all connections together), whatever the file size. Each piece
 * retries on its own (the policy of net/retry.ts) from the byte it reached; a response that shows
 * another version of the resource stops everything with a restart error.
 *
 * The steps: open the part file, run the connection workers (each takes a piece, streams it, takes
 * the next), grow the connections while throughput grows, and finish by recording the checkpoint
 * and turning the first failure into the job's error.
 */
class RangedDownload {
  private readonly ctx: DownloadContext;
  private readonly plan: RangePlan;
  private readonly signal: AbortSignal;
  private readonly flushAt: number;
  private readonly policy: RetryPolicy;
  private readonly limit: AdaptiveConcurrency;
  private readonly checkpoint: CheckpointWriter;
  private readonly running: Promise<void>[] = [];
  private readonly writer: PieceWriter;
  private workers = 0;
  private requestMs: number;
  private sinceSpaceCheck = 0;
  private failure: unknown = null;

  constructor(
    private readonly o: RangedOptions,
    /** The part file, open for positioned writes; closed when the download ends. */
    private readonly fh: FileHandle,
  ) {
    const { ctx } = o;
    this.ctx = ctx;
    this.plan = o.plan;
    this.signal = o.controller.signal;
    // chunk_size bounds one write and one connection's buffer; the job as a whole buffers at most
    // BUFFER_CHUNKS × chunk_size. Sixteen connections holding a full 1 MiB chunk each keep buffers
    // alive long enough to reach V8's old generation: measured, `gabe serve` peaked 30 MB higher
    // (165 vs 137 MB) than with 256 KiB each, at the same speed (a write per 256 KiB is still few
    // syscalls).
    this.flushAt = Math.min(
      ctx.config.chunk_size,
      Math.max(MIN_FLUSH_BYTES, Math.floor((BUFFER_CHUNKS * ctx.config.chunk_size) / o.connections)),
    );
    this.policy = { ...DEFAULT_RETRY_POLICY, maxRetries: ctx.config.max_retries };
    // Like HLS segments (pipeline/adaptive.ts): a CDN caps each connection, so more of them buy speed up to a
    // point only a measurement finds. Each buffer written counts as one fetch.
    const connections = { initial: o.connections, max: o.maxConnections ?? o.connections };
    this.limit = new AdaptiveConcurrency({ ...connections, ...limiterOptions(o.http.limiter) });
    this.requestMs = o.first?.requestMs ?? 0;
    this.checkpoint = new CheckpointWriter(`${o.file}.json`, () =>
      JSON.stringify(checkpointOf(o.id, o.plan)),
    );
    this.writer = new PieceWriter(ctx, fh, o.url, this.flushAt, (n) => this.onWritten(n));
  }

  async run(): Promise<void> {
    const { o, plan } = this;
    try {
      // Claims nothing yet; written beside the first requests rather than before them.
      this.checkpoint.soon();
      if (o.first) {
        o.first.piece.owned = true;
        this.start(o.first.piece, { res: o.first.res, end: o.first.end });
      }
      for (let i = o.first ? 1 : 0; i < o.connections; i++) this.start(plan.take(this.timing()));
      // Connections added later join the list while the first ones run.
      for (let i = 0; i < this.running.length; i++) await this.running[i];
    } finally {
      await this.close();
    }
    this.finish();
  }

  /** Stops the checkpoint timer and closes the part file; records the last bytes when interrupted. */
  private async close(): Promise<void> {
    const { checkpoint, failure } = this;
    checkpoint.stop();
    // Interrupted (shutdown, a failed piece): record the last bytes written, for the next start.
    if (failure !== null && !(failure instanceof FileChangedError)) await checkpoint.now().catch(() => {});
    await checkpoint.settled();
    await this.fh.close();
    // Unread when the start failed; a no-op when its worker read it.
    this.o.first?.res.body.destroy();
  }

  /** The download's outcome: the first failure (a cancellation as CANCELLED), or every byte on disk. */
  private finish(): void {
    const { failure } = this;
    if (failure !== null) {
      if (this.ctx.signal.aborted || (isAbortError(failure) && !(failure instanceof FileChangedError))) {
        throw new GabeError('CANCELLED', 'the job was cancelled');
      }
      throw failure;
    }
    if (this.checkpoint.failure) throw this.checkpoint.failure;
    const left = this.plan.pieces.find((p) => missing(p) > 0 || p.written < p.end);
    if (left) throw new GabeError('INTERNAL', `bytes ${left.written}-${left.end - 1} were never fetched`);
  }

  private timing(): Timing {
    return { requestMs: this.requestMs, meanRateBps: this.plan.meanRateBps };
  }

  private start(piece: PieceState | null, first?: InHand): void {
    this.workers++;
    this.running.push(this.worker(piece, first).catch((err: unknown) => this.fail(err)));
  }

  private fail(err: unknown): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.o.controller.abort();
  }

  /** Opens connections up to the limit while there is a piece to give them. */
  private grow(): void {
    while (this.workers < this.limit.limit && this.failure === null && !this.signal.aborted) {
      const piece = this.plan.take(this.timing());
      if (!piece) return;
      this.start(piece);
    }
  }

  /** One connection: fetches its piece, then takes the next one the plan gives it, until none is left. */
  private async worker(piece: PieceState | null, first?: InHand): Promise<void> {
    let current = piece;
    let inHand = first;
    while (current && !this.signal.aborted) {
      const from = current.received;
      const began = performance.now();
      await this.fetchPiece(current, inHand);
      this.ctx.log.debug(
        { from, to: current.end, ms: Math.round(performance.now() - began) },
        'byte range complete',
      );
      inHand = undefined;
      this.plan.release(current);
      await this.checkpoint.now();
      // Beyond the limit (an origin that pushed back): this connection stops here.
      current = this.workers > this.limit.limit ? null : this.plan.take(this.timing());
    }
    this.workers--;
  }

  /** Every byte of the piece, with retries from the byte it reached. */
  private async fetchPiece(piece: PieceState, first?: InHand): Promise<void> {
    let inHand = first;
    await withRetry(
      async () => {
        while (piece.received < piece.end) {
          const { res, end } = inHand ?? (await this.request(piece));
          inHand = undefined;
          await this.writer.stream(piece, res, end);
        }
      },
      this.policy,
      {
        signal: this.signal,
        onRetry: (err, attempt, delayMs) => {
          // Waiting: an idle connection may take the upper half of this piece meanwhile.
          piece.rateBps = 0;
          if (THROTTLE_STATUSES.has(originStatus(err) ?? 0)) this.limit.onThrottle();
          this.ctx.onRetry?.();
          this.ctx.log.warn(
            { err: err.message, attempt, delayMs, from: piece.received, to: piece.end },
            'byte range failed; retrying from the byte it reached',
          );
        },
      },
    );
  }

  /** Asks for the rest of the piece and checks the answer. */
  private async request(piece: PieceState): Promise<InHand> {
    const start = piece.received;
    const askedEnd = piece.end - 1;
    const sent = performance.now();
    let res: HttpResponse;
    try {
      res = await this.o.http.get(this.o.url, { signal: this.signal, range: { start, end: askedEnd } });
    } catch (err) {
      if (err instanceof HttpStatusError && err.status === 416) {
        throw new FileChangedError('it is shorter now (HTTP 416 for a byte range inside it)');
      }
      throw err;
    }
    this.requestMs = 0.7 * this.requestMs + 0.3 * (performance.now() - sent);
    return { res, end: this.check(res, start, askedEnd) };
  }

  /** Checks a piece's 206 against what was asked and the resource we started with. */
  private check(res: HttpResponse, start: number, askedEnd: number): number {
    const { url, id } = this.o;
    const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : null;
    const fail = (err: GabeError): never => {
      res.body.destroy();
      throw err;
    };
    if (res.status !== 206)
      fail(new FileChangedError(`the server answered a byte range with status ${res.status}`));
    if (!range) {
      return fail(
        new GabeError('INTEGRITY', `a 206 answer without a valid Content-Range from ${url}`, {
          retryable: true,
        }),
      );
    }
    const change = describeChange(id, resourceIdOf(range.total ?? id.size, res.headers));
    if (change) fail(new FileChangedError(change));
    // A shorter answer than asked is allowed (some servers cap ranges): the loop asks for the rest.
    if (range.start !== start || range.end > askedEnd || range.end < start) {
      fail(
        new GabeError(
          'INTEGRITY',
          `asked ${url} for bytes ${start}-${askedEnd}, got ${range.start}-${range.end}`,
          {
            retryable: true,
          },
        ),
      );
    }
    return range.end + 1;
  }

  /** A write landed in the part file: the plan, the checkpoint and the progress move on. */
  private async onWritten(n: number): Promise<void> {
    this.limit.onFetch(n);
    this.grow();
    this.checkpoint.soon();
    this.ctx.reportProgress();
    this.sinceSpaceCheck += n;
    if (this.sinceSpaceCheck >= SPACE_CHECK_BYTES) {
      this.sinceSpaceCheck = 0;
      await ensureSpace(path.dirname(this.o.file), this.plan.missingBytes);
    }
  }
}
