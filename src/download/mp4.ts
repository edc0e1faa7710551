import { open, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { GabeError, isGabeError } from '../errors.js';
import type { JobResult } from '../jobs/types.js';
import { ffprobe, type ProbeResult, runTool } from '../media/run.js';
import type { GuardOptions } from '../net/guard.js';
import { HttpClient, type HttpResponse } from '../net/http.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../net/retry.js';
import { ensureSpace, publishFile } from '../storage/paths.js';
import type { DownloadContext, Downloader } from './types.js';

/** Content-Range: bytes 100-199/1000 → { start: 100, total: 1000 } (total null for "*"). */
export function parseContentRange(
  value: unknown,
): { start: number; end: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(value ?? '').trim());
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

async function sizeOf(file: string): Promise<number> {
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
/** Free space is re-checked after this many bytes, so a disk that other writers fill is noticed early. */
const SPACE_CHECK_BYTES = 32 * 1024 * 1024;

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
    const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await fh.write(buf);
    written += buf.length;
  };
  try {
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      pending.push(b);
      pendingBytes += b.length;
      ctx.progress.addBytes(b.length);
      if (pendingBytes >= chunkSize) {
        const before = written;
        await flush();
        ctx.reportProgress();
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

/** HTML error pages and JSON errors often come with status 200: name them instead of "invalid data". */
async function sniffText(file: string): Promise<string | null> {
  const fh = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(512), 0, 512, 0);
    const head = buffer.subarray(0, bytesRead).toString('latin1').trimStart().toLowerCase();
    if (head.startsWith('<!doctype html') || head.startsWith('<html') || head.startsWith('<?xml'))
      return 'an HTML/XML page';
    if (head.startsWith('{') || head.startsWith('[')) return 'JSON';
    if (head.startsWith('#extm3u')) return 'an HLS playlist (use POST /download/ for HLS)';
    return null;
  } finally {
    await fh.close();
  }
}

async function probeVideo(ctx: DownloadContext, file: string): Promise<ProbeResult> {
  const text = await sniffText(file);
  if (text) throw new GabeError('NOT_A_VIDEO', `the URL returned ${text}, not a video file`);
  let probe: ProbeResult;
  try {
    probe = await ffprobe(ctx.ffmpeg.ffprobe, file, ctx.signal);
  } catch (err) {
    if (isGabeError(err, 'CANCELLED')) throw err;
    throw new GabeError(
      'NOT_A_VIDEO',
      `the downloaded file is not a video ffprobe can read: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (!probe.streams.some((s) => s.codec_type === 'video' || s.codec_type === 'audio')) {
    throw new GabeError('NOT_A_VIDEO', 'the downloaded file has no video or audio stream');
  }
  return probe;
}

function describeResolution(probe: ProbeResult): string | null {
  const v = probe.streams.find((s) => s.codec_type === 'video' && s.width && s.height);
  return v ? `${v.width}x${v.height}` : null;
}

export const mp4Downloader = {
  /** `seams.guard`: the destination guard's test seam (net/guard.ts); the service passes none. */
  async run(ctx: DownloadContext, seams: { guard?: GuardOptions } = {}): Promise<JobResult> {
    const { job, config, signal, log } = ctx;
    const url = job.request.url;
    const http = new HttpClient({
      timeoutMs: config.connection_timeout * 1000,
      proxy: job.request.proxy ?? config.proxy,
      connections: 1,
      allowPrivateNetworks: config.allow_private_networks,
      guard: seams.guard,
    });
    const part = path.join(ctx.tempDir, 'download.part');
    try {
      await withRetry(
        async () => {
          let start = await sizeOf(part);
          let res: HttpResponse;
          try {
            res = await http.get(url, { signal, range: start > 0 ? { start } : undefined });
          } catch (err) {
            // 416 on a resume: the previous attempt already had every byte.
            const status = isGabeError(err, 'HTTP_STATUS') ? err.details?.['status'] : undefined;
            if (start > 0 && status === 416) return;
            throw err;
          }
          let total = res.contentLength;
          if (start > 0) {
            const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : null;
            if (range && range.start === start) {
              total = range.total;
            } else {
              // The server ignored Range (200) or answered another range: start over from byte 0.
              log.info({ status: res.status }, 'origin did not resume the range; downloading from the start');
              await truncate(part, 0);
              start = 0;
            }
          }
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
      ctx.reportProgress();
      const probe = await probeVideo(ctx, part);
      let final = part;
      let container = 'mp4';
      if (!/mp4|mov/.test(probe.format.format_name)) {
        // Served as MP4 but something else (MPEG-TS, Matroska): remux so the output is what was asked.
        final = path.join(ctx.tempDir, 'remuxed.mp4');
        log.info({ format: probe.format.format_name }, 'remuxing to MP4');
        await runTool(
          ctx.ffmpeg.ffmpeg,
          [
            '-hide_banner',
            '-nostdin',
            '-y',
            '-i',
            part,
            '-map',
            '0',
            '-c',
            'copy',
            '-movflags',
            '+faststart',
            '-f',
            'mp4',
            final,
          ],
          { signal },
        ).catch((err: unknown) => {
          if (isGabeError(err, 'CANCELLED')) throw err;
          throw new GabeError(
            'NOT_A_VIDEO',
            `could not remux ${probe.format.format_name} to MP4: ${(err as Error).message}`,
          );
        });
        await rm(part, { force: true });
        container = probe.format.format_name;
      }
      const size = await sizeOf(final);
      const outputPath = await publishFile(final, config.output_path, job.video_name, '.mp4');
      const duration = Number(probe.format.duration);
      return {
        status: 'completed',
        output_path: outputPath,
        resolution: describeResolution(probe),
        video_name: path.basename(outputPath, '.mp4'),
        original_url: url,
        file_size_mb: Math.round((size / (1024 * 1024)) * 100) / 100,
        file_size_bytes: size,
        duration_seconds: Number.isFinite(duration) ? duration : null,
        segment_count: null,
        container,
      };
    } finally {
      await http.destroy();
    }
  },
} satisfies Downloader;
