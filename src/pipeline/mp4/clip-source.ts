/**
 * The source of an MP4 clip, fetched sparsely: a ranged GET of the head says whether the origin does
 * ranges and how big the file is; the top-level boxes are walked by their headers (the moov may be at
 * either end), every box but mdat's payload is fetched whole, and the moov's sample index gives the
 * byte ranges of the samples the clip needs (clip-plan.ts). Those land at their offsets in a file of
 * the source's size, through the parallel ranged download (connections, retries, checkpoint), and
 * ffmpeg cuts the clip from that copy. Anything unexpected returns the reason to fetch it all instead.
 */
import { setMaxListeners } from 'node:events';
import { open, rm } from 'node:fs/promises';
import type { ClipRange } from '../../jobs/clip-range.js';
import { readSampleIndex, type SampleIndex } from '../../media/mp4-sample-index.js';
import type { HttpClient, HttpResponse } from '../../net/client.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../../net/retry.js';
import { readWholeBody } from '../../net/whole-body.js';
import { FileChangedError, GabeError, HttpStatusError } from '../../service/errors.js';
import { ensureSpace } from '../../storage/paths.js';
import type { DownloadContext } from '../context.js';
import { type ClipPlan, planClip, withoutRanges } from './clip-plan.js';
import { downloadRanges } from './parallel-ranges.js';
import { loadCheckpoint, writeAt } from './part-file.js';
import {
  connectionsFor,
  describeChange,
  parseContentRange,
  RangePlan,
  type ResourceId,
  resourceIdOf,
} from './range-plan.js';

/** The first request's size: the ftyp, often the whole moov of a faststart file, an mdat header. */
const HEAD_BYTES = 64 * 1024;
/** Top-level boxes other than mdat are fetched whole; more than this in all is not a plain MP4. */
const MAX_META_BYTES = 64 * 1024 * 1024;

/** Bytes of the source fetched so far, each region at its offset. */
interface Region {
  at: number;
  data: Buffer;
}

/** What fetchClipSource did: the sparse copy is ready, or why the whole file is needed. */
export type ClipSource = { sparse: true; plan: ClipPlan } | { sparse: false; reason: string };

/** Small ranged reads of the source, every answer checked against the first one's identity. */
class SourceReader {
  readonly regions: Region[] = [];
  id: ResourceId | null = null;

  constructor(
    private readonly ctx: DownloadContext,
    private readonly http: HttpClient,
    /** The job's URL, then the one that answered the head (after redirects). */
    public url: string,
  ) {}

  get size(): number {
    return this.id?.size ?? 0;
  }

  /** The head: null when the origin does not answer ranges with a size (the caller falls back). */
  async head(): Promise<Buffer | null> {
    return await this.fetch(0, HEAD_BYTES - 1, async (res) => {
      const cr = res.status === 206 ? parseContentRange(res.headers['content-range']) : null;
      if (!cr || cr.total === null || cr.start !== 0) return null;
      this.id = resourceIdOf(cr.total, res.headers);
      this.url = res.url;
      return await this.keep(0, res, cr.end + 1);
    });
  }

  /** Bytes [start, end) of the source, fetched unless one region already holds them. */
  async bytes(start: number, end: number): Promise<Buffer> {
    const have = this.regions.find((r) => r.at <= start && r.at + r.data.length >= end);
    if (have) return have.data.subarray(start - have.at, end - have.at);
    // Asking for a little more costs nothing: the next box header is often in it.
    const last = Math.min(this.size, Math.max(end, start + HEAD_BYTES)) - 1;
    const data = await this.fetch(start, last, async (res) => {
      const cr = res.status === 206 ? parseContentRange(res.headers['content-range']) : null;
      const change = cr && describeChange(this.id!, resourceIdOf(cr.total ?? this.size, res.headers));
      if (!cr || cr.start !== start || cr.end + 1 < end || change) {
        throw new FileChangedError(
          change ?? `the server answered bytes ${start}-${last} with status ${res.status}`,
        );
      }
      return await this.keep(start, res, cr.end + 1);
    });
    return data!.subarray(0, end - start);
  }

  private async keep(at: number, res: HttpResponse, end: number): Promise<Buffer> {
    const { chunks, length } = await readWholeBody(res.url, res, end - at, undefined);
    const data = Buffer.concat(chunks, length);
    this.ctx.progress.addBytes(length);
    this.regions.push({ at, data });
    return data;
  }

  /**
   * One ranged request and what `take` makes of its answer, retried whole (a body that breaks off
   * too); a 416 is an empty file, null. An answer `take` does not read is dropped.
   */
  private fetch(start: number, end: number, take: (res: HttpResponse) => Promise<Buffer | null>) {
    const { ctx } = this;
    return withRetry(
      async () => {
        let res: HttpResponse;
        try {
          res = await this.http.get(this.url, { signal: ctx.signal, range: { start, end } });
        } catch (err) {
          if (!(err instanceof HttpStatusError) || err.status !== 416) throw err;
          // For the head: an empty file, which the whole-file path reports as such; later: it shrank.
          if (start === 0) return null;
          throw new FileChangedError('it is shorter now (HTTP 416 for a byte range inside it)');
        }
        try {
          return await take(res);
        } finally {
          res.body.destroy();
        }
      },
      { ...DEFAULT_RETRY_POLICY, maxRetries: ctx.config.max_retries },
      {
        signal: ctx.signal,
        onRetry: (err, attempt, delayMs) => {
          ctx.onRetry?.();
          ctx.log.warn({ err: err.message, attempt, delayMs }, 'clip request failed; retrying with back-off');
        },
      },
    );
  }
}

/**
 * Walks the top-level boxes from their headers, fetching every box but mdat's payload whole. The
 * moov's sample index, or why there is none: fragments (moof), a box that overruns the file, too much
 * that is not media, a sample table the reader does not follow.
 */
async function readIndex(src: SourceReader): Promise<SampleIndex | string> {
  let moov: Buffer | null = null;
  let meta = 0;
  for (let at = 0; at < src.size; ) {
    const header = await src.bytes(at, Math.min(at + 16, src.size));
    if (header.length < 8) return 'a truncated box header at the end of the file';
    let size = header.readUInt32BE(0);
    const type = header.toString('latin1', 4, 8);
    let headerSize = 8;
    if (size === 1 && header.length >= 16) {
      size = Number(header.readBigUInt64BE(8));
      headerSize = 16;
    } else if (size === 0) size = src.size - at;
    if (size < headerSize || at + size > src.size)
      return `the ${JSON.stringify(type)} box at ${at} overruns the file`;
    if (type === 'moof') return 'a fragmented MP4 (moof boxes)';
    if (type !== 'mdat') {
      meta += size;
      if (meta > MAX_META_BYTES) return 'more than 64 MiB of boxes besides mdat';
      const box = await src.bytes(at, at + size);
      if (type === 'moov') moov = box;
    }
    at += size;
  }
  if (!moov) return 'no moov box';
  return (
    readSampleIndex(moov, src.size) ?? 'a sample table this reader does not follow (fragments, several edits)'
  );
}

/**
 * Fetches what the clip needs into `part`, a sparse copy of the source at its full size, or answers
 * why not (the caller then downloads the whole file). A `start` at or beyond the media's duration is
 * the request's fault: VALIDATION. A checkpoint beside `part` from the same source is resumed.
 */
export async function fetchClipSource(
  ctx: DownloadContext,
  http: HttpClient,
  url: string,
  part: string,
  clip: ClipRange,
): Promise<ClipSource> {
  const src = new SourceReader(ctx, http, url);
  if (!(await src.head())) return { sparse: false, reason: 'the origin does not answer byte ranges' };
  const index = await readIndex(src);
  if (typeof index === 'string') return { sparse: false, reason: index };
  if (clip.start >= index.duration) {
    throw new GabeError(
      'VALIDATION',
      `start (${clip.start} s) is at or beyond the end of the media (${index.duration.toFixed(3)} s)`,
    );
  }
  const plan = planClip(index, clip, src.size);
  if (!plan) return { sparse: false, reason: 'the sample table points outside the file' };
  await writeSparse(ctx, http, src, part, plan);
  return { sparse: true, plan };
}

/** The sparse copy: the boxes read so far, then the plan's ranges over the parallel connections. */
async function writeSparse(
  ctx: DownloadContext,
  http: HttpClient,
  src: SourceReader,
  part: string,
  clip: ClipPlan,
): Promise<void> {
  const id = src.id!;
  const regions = src.regions.map((r) => ({ start: r.at, end: r.at + r.data.length }));
  // The head often holds the first samples already.
  const ranges = withoutRanges(clip.ranges, regions);
  const wanted = ranges.reduce((n, r) => n + r.end - r.start, 0);
  const cp = await loadCheckpoint(part);
  const resume = cp !== null && describeChange(cp, id) === null;
  const plan = resume ? RangePlan.fromCheckpoint(cp) : RangePlan.sparse(id.size, ranges);
  const known = regions.reduce((n, r) => n + r.end - r.start, 0);
  ctx.progress.setTotals({ bytes: known + wanted });
  ctx.progress.setDoneBytes(known + wanted - plan.missingBytes);
  await ensureSpace(ctx.tempDir, known + plan.missingBytes * 2);
  const fh = await open(part, resume ? 'r+' : 'w');
  try {
    if (!resume) await fh.truncate(id.size);
    for (const r of src.regions) await writeAt(fh, [r.data], r.at);
  } finally {
    await fh.close();
  }
  const connections = connectionsFor(plan.missingBytes, ctx.config.mp4_connections);
  ctx.log.info(
    { bytes: id.size, ranges: ranges.length, clipBytes: wanted, missing: plan.missingBytes, resume },
    'clip: fetching the samples it needs',
  );
  if (plan.missingBytes > 0) await fetchRanges(ctx, http, src, part, plan, connections);
  await rm(`${part}.json`, { force: true });
}

/** The plan's missing ranges into the part file, over the parallel connections. */
async function fetchRanges(
  ctx: DownloadContext,
  http: HttpClient,
  src: SourceReader,
  part: string,
  plan: RangePlan,
  connections: number,
): Promise<void> {
  const controller = new AbortController();
  // Every connection's request, and each piece waiting to retry, listens on it: not a leak.
  setMaxListeners(4 * Math.max(connections, ctx.config.mp4_connections_max) + 8, controller.signal);
  const onAbort = () => controller.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal.aborted) controller.abort();
  try {
    await downloadRanges({
      ctx,
      http,
      url: src.url,
      file: part,
      id: src.id!,
      plan,
      connections,
      maxConnections: Math.max(connections, ctx.config.mp4_connections_max),
      controller,
    });
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
