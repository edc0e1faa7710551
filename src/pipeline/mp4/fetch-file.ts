/**
 * Fetching a whole MP4 file into its part file: the first request decides between one stream and
 * parallel ranges, a checkpoint beside the part file is resumed, and a file that changed on the server
 * is fetched again from the start.
 */
import { setMaxListeners } from 'node:events';
import { open, rm } from 'node:fs/promises';
import type { HttpClient, HttpResponse } from '../../net/client.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../../net/retry.js';
import { FileChangedError, HttpStatusError } from '../../service/errors.js';
import { ensureSpace } from '../../storage/paths.js';
import type { DownloadContext } from '../context.js';
import { downloadRanges } from './parallel-ranges.js';
import { loadCheckpoint, removePart } from './part-file.js';
import {
  type Checkpoint,
  connectionsFor,
  describeChange,
  type PieceState,
  parseContentRange,
  RangePlan,
  resourceIdOf,
} from './range-plan.js';
import { streamWhole } from './single-stream.js';

/**
 * Fresh starts after the file changed on the server. The last one is a single stream: an origin
 * whose validators differ from request to request (load-balanced servers with per-host ETags do
 * that) can never prove that pieces from several requests are one version, one response can.
 */
const MAX_RESTARTS = 2;

/** A checkpoint found beside the part file: its plan, and the first piece still missing bytes. */
interface Resume {
  cp: Checkpoint;
  plan: RangePlan;
  at: PieceState;
}

/** The first request's answer, when it can start a ranged download. */
interface RangedStart {
  res: HttpResponse;
  /** Where its byte range ends (exclusive). */
  end: number;
  total: number;
  requestMs: number;
}

/**
 * One try at the whole file. The first request asks for `bytes=0-` (or, when resuming, for the
 * first missing piece): an open-ended range costs nothing over a plain GET, tells us in one round
 * trip whether the server does ranges and how big the file is, and lets the first connection keep
 * streaming its piece while the other connections start, instead of going idle after a small probe.
 */
async function attempt(
  ctx: DownloadContext,
  http: HttpClient,
  url: string,
  part: string,
  single: boolean,
): Promise<void> {
  const cp = single ? null : await loadCheckpoint(part);
  // Old partial files go while the first request is on its way; they are gone before any write.
  const cleaning = cp ? Promise.resolve() : removePart(part);
  cleaning.catch(() => {});
  const plan = cp ? RangePlan.fromCheckpoint(cp) : null;
  const at = plan?.firstOpen() ?? null;
  if (plan && !at) {
    // Every byte was on disk when the process stopped, before the checkpoint was removed.
    ctx.progress.setTotals({ bytes: plan.size });
    ctx.progress.setDoneBytes(plan.size);
    await rm(`${part}.json`, { force: true });
    return;
  }
  const resume: Resume | null = cp && plan && at ? { cp, plan, at } : null;
  const controller = new AbortController();
  // Every connection's request, and each piece waiting to retry, listens on it: not a leak.
  const connections = Math.max(ctx.config.mp4_connections, ctx.config.mp4_connections_max);
  setMaxListeners(4 * connections + 8, controller.signal);
  const onAbort = () => controller.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal.aborted) controller.abort();
  try {
    const range = single
      ? undefined
      : resume
        ? { start: resume.at.received, end: resume.at.end - 1 }
        : { start: 0 };
    const sent = performance.now();
    const res = await firstRequest(ctx, http, url, range, resume !== null, controller.signal);
    const requestMs = performance.now() - sent;
    await cleaning;
    const cr = res?.status === 206 ? parseContentRange(res.headers['content-range']) : null;
    // A chunked answer (no Content-Length) is what dynamic origins (on-the-fly packaging,
    // transcoding) send; their ranges are the least dependable, so they get one stream like a 200.
    const total = res?.contentLength !== null ? (cr?.total ?? null) : null;
    if (!res || !cr || total === null || cr.start !== (range?.start ?? 0)) {
      if (resume) {
        res?.body.destroy();
        throw new FileChangedError(`the server no longer answers byte ranges (status ${res?.status ?? 416})`);
      }
      // No Range support (200), or a 206 we cannot plan pieces with (no total): one stream.
      const usable = res !== null && (res.status === 200 || cr?.start === 0);
      if (!usable) res?.body.destroy();
      return await streamWhole(ctx, http, url, part, usable ? res : null);
    }
    await downloadRanged(ctx, http, part, { res, end: cr.end + 1, total, requestMs }, resume, controller);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The first request, with retries: its answer, or null for a 416 on `bytes=0-` (an empty file).
 * A 416 for a resume's range means the file shrank.
 */
async function firstRequest(
  ctx: DownloadContext,
  http: HttpClient,
  url: string,
  range: { start: number; end?: number } | undefined,
  resuming: boolean,
  signal: AbortSignal,
): Promise<HttpResponse | null> {
  return await withRetry<HttpResponse | null>(
    async () => {
      try {
        return await http.get(url, { signal, range });
      } catch (err) {
        // 416 for bytes=0-: an empty file (nothing is satisfiable); for a resume: the file shrank.
        if (!(err instanceof HttpStatusError) || err.status !== 416) throw err;
        if (resuming) throw new FileChangedError('it is shorter now (HTTP 416 for a byte range inside it)');
        return null;
      }
    },
    { ...DEFAULT_RETRY_POLICY, maxRetries: ctx.config.max_retries },
    {
      signal,
      onRetry: (err, attempt, delayMs) => {
        ctx.onRetry?.();
        ctx.log.warn({ err: err.message, attempt, delayMs }, 'download failed; retrying with back-off');
      },
    },
  );
}

/**
 * A ranged download from the first answer: checks it against the checkpoint when resuming, plans
 * the pieces (or takes the checkpoint's), sizes the part file and runs the connections.
 */
async function downloadRanged(
  ctx: DownloadContext,
  http: HttpClient,
  part: string,
  first: RangedStart,
  resume: Resume | null,
  controller: AbortController,
): Promise<void> {
  const { config, log } = ctx;
  const { res, total } = first;
  const seen = resourceIdOf(total, res.headers);
  const cp = resume?.cp ?? null;
  const change = cp ? describeChange(cp, seen) : null;
  if (change) {
    res.body.destroy();
    throw new FileChangedError(change);
  }
  // A validator this answer omits but the checkpoint has still guards the pieces still to come.
  const id = cp
    ? { size: total, etag: seen.etag ?? cp.etag, lastModified: seen.lastModified ?? cp.lastModified }
    : seen;
  const plan = resume?.plan ?? RangePlan.fresh(total, connectionsFor(total, config.mp4_connections));
  const connections = resume ? connectionsFor(plan.missingBytes, config.mp4_connections) : plan.pieces.length;
  ctx.progress.setTotals({ bytes: total });
  ctx.progress.setDoneBytes(plan.writtenBytes);
  ctx.reportProgress();
  await ensureSpace(ctx.tempDir, plan.missingBytes * 2);
  if (!resume) {
    // Sparse at full size: pieces land at their offsets, and the size marks a usable checkpoint.
    const fh = await open(part, 'w');
    await fh.truncate(total).finally(() => fh.close());
  }
  log.info(
    { bytes: total, missing: plan.missingBytes, connections },
    resume ? 'resuming a ranged download from its checkpoint' : 'ranged download',
  );
  await downloadRanges({
    ctx,
    http,
    url: res.url,
    file: part,
    id,
    plan,
    connections,
    maxConnections: Math.max(connections, config.mp4_connections_max),
    controller,
    first: { res, piece: resume?.at ?? plan.pieces[0]!, end: first.end, requestMs: first.requestMs },
  });
  await rm(`${part}.json`, { force: true });
}

/**
 * Gets every byte of `url` into `part`: in parallel ranges when the server supports Range and says
 * how big the file is, else as one stream; resuming from a checkpoint beside the part file when one
 * is there; starting over (a bounded number of times) when the file changes on the server.
 */
export async function fetchToPart(
  ctx: DownloadContext,
  http: HttpClient,
  url: string,
  part: string,
): Promise<void> {
  for (let restarts = 0; ; restarts++) {
    try {
      return await attempt(ctx, http, url, part, restarts === MAX_RESTARTS);
    } catch (err) {
      if (!(err instanceof FileChangedError) || restarts >= MAX_RESTARTS || ctx.signal.aborted) throw err;
      ctx.log.warn(
        { reason: err.message },
        'the file changed on the server; downloading it again from the start',
      );
      await removePart(part);
      ctx.progress.setDoneBytes(0);
    }
  }
}
