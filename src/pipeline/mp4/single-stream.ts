import { open, stat, truncate } from 'node:fs/promises';
import type { HttpClient, HttpResponse } from '../../net/client.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../../net/retry.js';
import { GabeError, HttpStatusError } from '../../service/errors.js';
import { ensureSpace, SPACE_CHECK_BYTES } from '../../storage/paths.js';
import type { DownloadContext } from '../context.js';
import { describeChange, parseContentRange, type ResourceId, resourceIdOf } from './range-plan.js';

export async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/**
 * Appends the body to `file` in chunk_size writes. What was received is written even when the
 * transfer breaks, so the next attempt resumes with Range from the right byte.
 */
async function appendBody(
  res: HttpResponse,
  file: string,
  ctx: DownloadContext,
  remaining: number | null,
): Promise<number> {
  const fh = await open(file, 'a');
  const chunkSize = ctx.config.chunk_size;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let written = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const buffers = pending;
    pending = [];
    pendingBytes = 0;
    const { bytesWritten } = await fh.writev(buffers);
    written += bytesWritten;
  };
  try {
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      pending.push(b);
      pendingBytes += b.length;
      ctx.progress.addBytes(b.length);
      // Throttled by the caller: progress moves with the bytes, not only with the writes.
      ctx.reportProgress();
      if (pendingBytes >= chunkSize) {
        const before = written;
        await flush();
        if (
          remaining !== null &&
          Math.floor(before / SPACE_CHECK_BYTES) !== Math.floor(written / SPACE_CHECK_BYTES)
        ) {
          await ensureSpace(ctx.tempDir, remaining - written);
        }
      }
    }
  } finally {
    try {
      await flush();
    } finally {
      await fh.close();
    }
  }
  return written;
}

/**
 * One connection, the body in order into `part`: for servers that ignore Range, answers of unknown
 * size, and files whose validators cannot be trusted across ranges. After a broken transfer the next
 * attempt asks for the rest with Range, and starts over when the server cannot give exactly that.
 * `first` is the first request's answer when the caller already has it (for byte 0 on).
 */
export async function streamWhole(
  ctx: DownloadContext,
  http: HttpClient,
  url: string,
  part: string,
  first: HttpResponse | null,
): Promise<void> {
  const { config, signal, log } = ctx;
  let inHand = first;
  let id: ResourceId | null = null;
  await withRetry(
    async () => {
      let start = inHand ? 0 : await sizeOf(part);
      let res: HttpResponse;
      if (inHand) {
        res = inHand;
        inHand = null;
        await truncate(part, 0).catch(() => {});
      } else {
        try {
          res = await http.get(url, { signal, range: start > 0 ? { start } : undefined });
        } catch (err) {
          // 416 on a resume: the previous attempt already had every byte.
          const status = err instanceof HttpStatusError ? err.status : undefined;
          if (start > 0 && status === 416) return;
          throw err;
        }
      }
      let total = res.contentLength;
      if (start > 0) {
        const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : null;
        const change =
          range?.total != null && id ? describeChange(id, resourceIdOf(range.total, res.headers)) : null;
        if (range && range.start === start && !change) {
          total = range.total;
        } else {
          // Range ignored (200), another range, or another version of the file: start over from byte 0.
          log.info(
            { status: res.status, change },
            'origin did not resume the range; downloading from the start',
          );
          await truncate(part, 0);
          start = 0;
        }
      }
      if (start === 0 && total !== null) id = resourceIdOf(total, res.headers);
      ctx.progress.setDoneBytes(start);
      ctx.progress.setTotals({ bytes: total });
      if (total !== null) await ensureSpace(ctx.tempDir, (total - start) * 2);
      const expected = total === null ? null : total - start;
      const got = await appendBody(res, part, ctx, expected);
      if (expected !== null && got !== expected) {
        throw new GabeError('TRUNCATED', `the transfer ended after ${got} of ${expected} bytes`);
      }
    },
    { ...DEFAULT_RETRY_POLICY, maxRetries: config.max_retries },
    {
      signal,
      onRetry: (err, attempt, delayMs) => {
        ctx.onRetry?.();
        log.warn({ err: err.message, attempt, delayMs }, 'download failed; retrying with back-off');
      },
    },
  );
}
