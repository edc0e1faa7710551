import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { type ClipRange, clipRange } from '../../jobs/clip-range.js';
import type { JobResult } from '../../jobs/types.js';
import { ffprobe, type ProbeResult, runTool, safeInput, VIDEO_DEMUXERS } from '../../media/ffmpeg/run.js';
import { metadataArgs } from '../../media/file-tags.js';
import { probeIsoBmff } from '../../media/mp4-probe.js';
import { textKind } from '../../media/sniff.js';
import { HttpClient } from '../../net/client.js';
import { transferLimits } from '../../net/deadlines.js';
import type { GuardOptions } from '../../net/guard.js';
import { mergeHeaders } from '../../net/headers.js';
import { jobRateLimiter } from '../../net/rate-limiter.js';
import { FileChangedError, GabeError, isGabeError } from '../../service/errors.js';
import { publishFile } from '../../storage/paths.js';
import type { DownloadContext, Downloader } from '../context.js';
import { finishOutput, jobTags, publishPoster } from '../output-extras.js';
import { cutClip } from './clip-cut.js';
import { fetchClipSource } from './clip-source.js';
import { fetchToPart } from './fetch-file.js';
import { writeFileTags } from './file-tags.js';
import { removePart } from './part-file.js';
import { sizeOf } from './single-stream.js';

/** HTML error pages and JSON errors often come with status 200: name them instead of "invalid data". */
const TEXT_NAMES = {
  html: 'an HTML/XML page',
  json: 'JSON',
  playlist: 'an HLS playlist (use POST /download/ for HLS)',
} as const;

async function sniffText(file: string): Promise<string | null> {
  const fh = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(512), 0, 512, 0);
    const kind = textKind(buffer.subarray(0, bytesRead));
    return kind ? TEXT_NAMES[kind] : null;
  } finally {
    await fh.close();
  }
}

async function probeVideo(ctx: DownloadContext, file: string): Promise<ProbeResult> {
  // A well-formed MP4 is checked in-process; everything else (other containers, damage) by ffprobe.
  const mp4 = await probeIsoBmff(file);
  if (mp4) return mp4;
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

/**
 * A clip's source on disk: the sparse copy when the origin does ranges and the moov can be read,
 * else (logged) the whole file, fetched as without a clip.
 */
async function fetchClipSourceOrWhole(
  ctx: DownloadContext,
  http: HttpClient,
  clip: ClipRange,
): Promise<string> {
  const { log, tempDir, job } = ctx;
  const sparse = path.join(tempDir, 'clip-source.part');
  try {
    const got = await fetchClipSource(ctx, http, job.request.url, sparse, clip);
    if (got.sparse) return sparse;
    log.info({ reason: got.reason }, 'clip: downloading the whole file');
  } catch (err) {
    if (!(err instanceof FileChangedError)) throw err;
    log.warn({ reason: err.message }, 'clip: the file changed on the server; downloading it whole');
  }
  await removePart(sparse);
  ctx.progress.setDoneBytes(0);
  const part = path.join(tempDir, 'download.part');
  await fetchToPart(ctx, http, job.request.url, part);
  return part;
}

/** Cuts the clip out of its probed source: the clip's file and its probe. */
async function cutFrom(
  ctx: DownloadContext,
  source: string,
  probe: ProbeResult,
  clip: ClipRange,
): Promise<{ file: string; probe: ProbeResult; warning: string | null }> {
  const duration = Number(probe.format.duration);
  if (clip.start >= duration) {
    throw new GabeError(
      'VALIDATION',
      `start (${clip.start} s) is at or beyond the end of the media (${duration.toFixed(3)} s)`,
    );
  }
  const file = path.join(ctx.tempDir, 'clip.mp4');
  const warning = await cutClip(ctx, source, file, clip);
  await rm(source, { force: true });
  return { file, probe: await probeVideo(ctx, file), warning };
}

function describeResolution(probe: ProbeResult): string | null {
  const v = probe.streams.find((s) => s.codec_type === 'video' && s.width && s.height);
  return v ? `${v.width}x${v.height}` : null;
}

/**
 * The downloaded file as an MP4 with the job's title and source: an MP4 keeps its bytes and gets the
 * tags in its moov (file-tags.ts); anything else served as MP4 (MPEG-TS, Matroska) is remuxed so the
 * output is what was asked. An mkv to be is left alone: its remux writes the tags.
 */
async function toMp4(
  ctx: DownloadContext,
  part: string,
  probe: ProbeResult,
  warnings: string[],
): Promise<{ final: string; container: string }> {
  const { job, log, signal } = ctx;
  const tags = jobTags(ctx);
  if (/mp4|mov/.test(probe.format.format_name)) {
    // tag_files: false keeps the file byte for byte as the origin served it.
    if (job.request.container === 'mkv' || !ctx.config.tag_files) return { final: part, container: 'mp4' };
    const tagged = await writeFileTags(part, tags, signal);
    log.debug({ tags: tagged.done }, 'title and source written into the file');
    if (tagged.done === 'skipped') warnings.push(`title and source not written into the file: ${tagged.why}`);
    return { final: part, container: 'mp4' };
  }
  const final = path.join(ctx.tempDir, 'remuxed.mp4');
  log.info({ format: probe.format.format_name }, 'remuxing to MP4');
  const args = [
    ...['-hide_banner', '-nostdin', '-y', ...safeInput('file', VIDEO_DEMUXERS), '-i', part],
    ...['-map', '0', '-c', 'copy', ...metadataArgs(tags), '-movflags', '+faststart', '-f', 'mp4', final],
  ];
  await runTool(ctx.ffmpeg.ffmpeg, args, { signal }).catch((err: unknown) => {
    if (isGabeError(err, 'CANCELLED')) throw err;
    throw new GabeError(
      'NOT_A_VIDEO',
      `could not remux ${probe.format.format_name} to MP4: ${(err as Error).message}`,
    );
  });
  await rm(part, { force: true });
  return { final, container: probe.format.format_name };
}

export const mp4Downloader = {
  /** `seams.guard`: the destination guard's test seam (net/guard.ts); the service passes none. */
  async run(ctx: DownloadContext, seams: { guard?: GuardOptions } = {}): Promise<JobResult> {
    const { job, config } = ctx;
    const url = job.request.url;
    const http = new HttpClient({
      ...transferLimits(config),
      proxy: job.request.proxy ?? config.proxy,
      proxyFrom: job.request.proxy ? 'request' : 'config',
      // One socket per parallel range; the destination guard checks each one as it connects.
      connections: Math.max(config.mp4_connections, config.mp4_connections_max),
      allowPrivateNetworks: config.allow_private_networks,
      guard: seams.guard,
      headers: mergeHeaders(config.headers, job.request.headers),
      jobUrl: url,
      limiter: jobRateLimiter(job.request.max_speed, ctx.serviceLimiter),
    });
    const clip = clipRange(job.request);
    try {
      let part = path.join(ctx.tempDir, 'download.part');
      if (clip) part = await fetchClipSourceOrWhole(ctx, http, clip);
      else await fetchToPart(ctx, http, url, part);
      ctx.reportProgress();
      let probe = await probeVideo(ctx, part);
      const warnings: string[] = [];
      let final: string;
      let container: string;
      if (clip) {
        container = /mp4|mov/.test(probe.format.format_name) ? 'mp4' : probe.format.format_name;
        const cut = await cutFrom(ctx, part, probe, clip);
        ({ file: final, probe } = cut);
        if (cut.warning) warnings.push(cut.warning);
      } else ({ final, container } = await toMp4(ctx, part, probe, warnings));
      const duration = Number(probe.format.duration);
      const seconds = Number.isFinite(duration) ? duration : null;
      const hasVideo = probe.streams.some((s) => s.codec_type === 'video');
      const out = await finishOutput(ctx, {
        ...{ file: final, ext: '.mp4', container, audioOnly: false, duration: seconds, hasVideo },
      });
      warnings.push(...out.warnings);
      const size = await sizeOf(out.file);
      const outputPath = await publishFile(out.file, config.output_path, job.video_name, out.ext);
      const result: JobResult = {
        status: 'completed',
        output_path: outputPath,
        resolution: describeResolution(probe),
        video_name: path.basename(outputPath, out.ext),
        original_url: url,
        file_size_mb: Math.round((size / (1024 * 1024)) * 100) / 100,
        file_size_bytes: size,
        duration_seconds: seconds,
        segment_count: null,
        container: out.container,
        ...(clip ? { clip: { start: clip.start, end: clip.end } } : {}),
      };
      if (out.poster) result.thumbnail_path = await publishPoster(out.poster, outputPath);
      if (warnings.length > 0) result.warnings = warnings;
      return result;
    } finally {
      await http.destroy();
    }
  },
} satisfies Downloader;
