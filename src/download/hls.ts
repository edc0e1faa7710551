import { stat } from 'node:fs/promises';
import path from 'node:path';
import { GabeError, isGabeError } from '../errors.js';
import { KeyCache } from '../hls/aes.js';
import type { MasterPlaylist, MediaPlaylist, Playlist, Rendition, Variant } from '../hls/model.js';
import { assertDownloadable, detectDrm, parsePlaylist } from '../hls/parse.js';
import { formatResolution, selectAudioRendition, selectVariant } from '../hls/select.js';
import type { JobResult } from '../jobs/types.js';
import { buildMergeArgs, isMoovReserveTooSmall, moovReserveFor } from '../media/merge.js';
import { ffprobe, runTool } from '../media/run.js';
import { type GuardOptions, surfaceForbidden } from '../net/guard.js';
import { mergeHeaders } from '../net/headers.js';
import { HttpClient } from '../net/http.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetry } from '../net/retry.js';
import { ensureSpace, publishFile } from '../storage/paths.js';
import { Merger } from './merger.js';
import { type KeyOverride, OVERRIDE_KEY_URI, planTrack, type TrackPlan } from './plan.js';
import { downloadTrack, isExpiredUrlError } from './track.js';
import type { DownloadContext, Downloader } from './types.js';

/** Playlists larger than this are refused before parsing (a 100,000-segment playlist is ~10 MB). */
const MAX_PLAYLIST_BYTES = 16 * 1024 * 1024;
/** Masters that point at masters: real CDNs do one hop; loops must end. */
const MAX_PLAYLIST_HOPS = 3;

async function loadPlaylist(
  http: HttpClient,
  url: string,
  ctx: DownloadContext,
  policy: RetryPolicy,
): Promise<Playlist> {
  const { data, res } = await withRetry(
    () => http.getBuffer(url, { signal: ctx.signal, maxBytes: MAX_PLAYLIST_BYTES }),
    policy,
    {
      signal: ctx.signal,
      onRetry: (err, attempt, delayMs) => {
        ctx.onRetry?.();
        ctx.log.warn({ url, err: err.message, attempt, delayMs }, 'playlist fetch failed; retrying');
      },
    },
  );
  // The final URL after redirects is the base for relative URIs (RFC 8216 4.1 via RFC 3986 5.1.3).
  return parsePlaylist(data.toString('utf8'), res.url);
}

function urlOf(item: { uri: string; resolvedUri?: string }, base: string | undefined): string {
  return item.resolvedUri ?? new URL(item.uri, base).href;
}

interface Selected {
  media: MediaPlaylist;
  /** The URL the media playlist was requested from (before redirects), for reloading it. */
  mediaUrl: string;
  variant: Variant | null;
  audio: MediaPlaylist | null;
  audioUrl: string | null;
  audioRendition: Rendition | null;
}

/** Resolves the job URL to the media playlists to download: the chosen variant and its audio, if separate. */
async function selectStreams(http: HttpClient, ctx: DownloadContext, policy: RetryPolicy): Promise<Selected> {
  const { request } = ctx.job;
  let playlist = await loadPlaylist(http, request.url, ctx, policy);
  let master: MasterPlaylist | null = null;
  let variant: Variant | null = null;
  let mediaUrl = request.url;
  for (let hop = 0; playlist.kind === 'master'; hop++) {
    if (hop >= MAX_PLAYLIST_HOPS) {
      throw new GabeError(
        'NOT_A_PLAYLIST',
        `the master playlist leads to more than ${MAX_PLAYLIST_HOPS} masters in a row`,
      );
    }
    const drm = detectDrm(playlist);
    if (drm) throw new GabeError('DRM', `the stream is DRM-protected (${drm}); Gabe cannot download it`);
    master = playlist;
    const selection = selectVariant(master, request.resolution, ctx.config.default_resolution);
    variant = selection.variant;
    ctx.log.info(
      { resolution: formatResolution(variant), bandwidth: variant.bandwidth, reason: selection.reason },
      'variant selected',
    );
    mediaUrl = urlOf(variant, master.baseUrl);
    playlist = await loadPlaylist(http, mediaUrl, ctx, policy);
  }
  const media = playlist;
  assertDownloadable(media);
  let audio: MediaPlaylist | null = null;
  let audioUrl: string | null = null;
  let audioRendition: Rendition | null = null;
  if (master && variant) {
    audioRendition = selectAudioRendition(master, variant);
    if (audioRendition?.uri) {
      audioUrl = urlOf({ uri: audioRendition.uri, resolvedUri: audioRendition.resolvedUri }, master.baseUrl);
      const loaded = await loadPlaylist(http, audioUrl, ctx, policy);
      if (loaded.kind !== 'media')
        throw new GabeError('NOT_A_PLAYLIST', 'the audio rendition is not a media playlist');
      assertDownloadable(loaded);
      audio = loaded;
      ctx.log.info(
        { name: audioRendition.name, language: audioRendition.language },
        'separate audio selected',
      );
    }
  }
  return { media, mediaUrl, variant, audio, audioUrl, audioRendition };
}

/**
 * Signed URLs expire mid-download. A fresh copy of the media playlist carries fresh segment and key
 * URLs; when the media playlist's own URL has expired too, the whole selection runs again from the
 * job's URL (the master), which picks the same variant from the same ladder.
 */
async function reloadTrack(
  which: 'video' | 'audio',
  selected: Selected,
  http: HttpClient,
  ctx: DownloadContext,
  policy: RetryPolicy,
): Promise<MediaPlaylist> {
  const url = which === 'video' ? selected.mediaUrl : selected.audioUrl;
  if (url) {
    try {
      const playlist = await loadPlaylist(http, url, ctx, policy);
      if (playlist.kind === 'media') return playlist;
    } catch (err) {
      if (!isExpiredUrlError(err)) throw err;
    }
  }
  const fresh = await selectStreams(http, ctx, policy);
  Object.assign(selected, fresh);
  const media = which === 'video' ? fresh.media : fresh.audio;
  if (!media) throw new GabeError('NOT_A_PLAYLIST', `the reloaded playlist no longer has the ${which} track`);
  return media;
}

function trackFile(ctx: DownloadContext, label: string, plan: TrackPlan): string {
  return path.join(ctx.tempDir, `${label}.${plan.fmp4 ? 'mp4' : 'ts'}`);
}

/**
 * The output must be as long as the playlist says. A short file means lost media that no HTTP status
 * revealed (a segment that decoded to nothing, a broken merge). Tolerance: encoders pad the last GOP
 * and audio priming adds a frame or two. With unreadable EXTINFs the playlist's sum is only a lower
 * bound, so only a file shorter than it fails.
 */
function checkDuration(actual: number | null, plan: TrackPlan): void {
  const expected = plan.duration;
  if (actual === null || expected <= 0) return;
  const tolerance = Math.max(1.5, expected * 0.02);
  const tooShort = actual < expected - tolerance;
  const tooLong = plan.unknownDurations === 0 && actual > expected + tolerance;
  if (tooShort || tooLong) {
    throw new GabeError(
      'INTEGRITY',
      `the merged file is ${actual.toFixed(2)} s long but the playlist lists ${expected.toFixed(2)} s of media`,
    );
  }
}

function parseKeyHex(hex: string): Buffer {
  return Buffer.from(hex.replace(/^0[xX]/, ''), 'hex');
}

function keyOverride(request: DownloadContext['job']['request']): KeyOverride | null {
  if (!request.key && !request.iv) return null;
  return { key: Boolean(request.key), iv: request.iv ? parseKeyHex(request.iv) : null };
}

function isMoovReserveError(err: unknown): boolean {
  const stderr = isGabeError(err) ? err.details?.['stderr'] : undefined;
  return typeof stderr === 'string' && isMoovReserveTooSmall(stderr);
}

/** Test seams: the destination guard's (net/guard.ts) and the moov reservation's; the service passes none. */
export interface HlsSeams {
  guard?: GuardOptions;
  moovReserve?: (seconds: number) => number | null;
}

export const hlsDownloader = {
  async run(ctx: DownloadContext, seams: HlsSeams = {}): Promise<JobResult> {
    const { job, config, log, signal } = ctx;
    const multithreading = job.request.use_multithreading ?? config.use_multithreading;
    const concurrency = multithreading
      ? {
          initial: config.segment_concurrency,
          max: Math.max(config.segment_concurrency, config.segment_concurrency_max),
        }
      : { initial: 1, max: 1 };
    const audioConcurrency = {
      initial: Math.max(1, Math.ceil(concurrency.initial / 4)),
      max: Math.max(1, Math.ceil(concurrency.max / 4)),
    };
    const policy = { ...DEFAULT_RETRY_POLICY, maxRetries: config.max_retries };
    const http = new HttpClient({
      timeoutMs: config.connection_timeout * 1000,
      proxy: job.request.proxy ?? config.proxy,
      connections: concurrency.max + audioConcurrency.max + 2,
      allowPrivateNetworks: config.allow_private_networks,
      guard: seams.guard,
      headers: mergeHeaders(config.headers, job.request.headers),
    });
    try {
      const selected = await selectStreams(http, ctx, policy);
      const override = keyOverride(job.request);
      const videoPlan = planTrack(selected.media, override);
      const audioPlan = selected.audio ? planTrack(selected.audio, override) : null;
      ctx.progress.setTotals({
        segments: videoPlan.segmentCount + (audioPlan?.segmentCount ?? 0),
        bytes:
          videoPlan.knownBytes !== null && (audioPlan === null || audioPlan.knownBytes !== null)
            ? videoPlan.knownBytes + (audioPlan?.knownBytes ?? 0)
            : null,
      });
      ctx.reportProgress();
      const estimate = ((selected.variant?.bandwidth ?? 0) / 8) * videoPlan.duration;
      if (estimate > 0) await ensureSpace(ctx.tempDir, estimate * 2);

      const keys = new KeyCache(async (uri) => {
        if (uri === OVERRIDE_KEY_URI && job.request.key) return parseKeyHex(job.request.key);
        const { data } = await withRetry(() => http.getBuffer(uri, { signal, maxBytes: 1024 }), policy, {
          signal,
        });
        return data;
      });
      const common = {
        http,
        policy,
        keys,
        signal,
        log,
        progress: ctx.progress,
        reportProgress: ctx.reportProgress,
        onRetry: ctx.onRetry,
      };
      const videoFile = trackFile(ctx, 'video', videoPlan);
      const audioFile = audioPlan ? trackFile(ctx, 'audio', audioPlan) : null;
      const merged = path.join(ctx.tempDir, 'merged.mp4');
      // ffmpeg muxes while the segments arrive; the track files are kept beside it so that a job
      // interrupted mid-way resumes from them instead of fetching everything again.
      const moovReserve = seams.moovReserve
        ? seams.moovReserve(videoPlan.duration)
        : videoPlan.unknownDurations === 0
          ? moovReserveFor(videoPlan.duration)
          : null;
      const merger = new Merger({
        ffmpeg: ctx.ffmpeg.ffmpeg,
        separateAudio: audioPlan !== null,
        output: merged,
        moovReserve,
        signal,
      });
      try {
        await Promise.all([
          downloadTrack({
            ...common,
            plan: videoPlan,
            file: videoFile,
            concurrency,
            label: 'video',
            refresh: async () => planTrack(await reloadTrack('video', selected, http, ctx, policy), override),
            sink: merger.main,
          }),
          audioPlan && audioFile
            ? downloadTrack({
                ...common,
                plan: audioPlan,
                file: audioFile,
                // Audio segments are small; a few connections keep pace with the video.
                concurrency: audioConcurrency,
                label: 'audio',
                refresh: async () =>
                  planTrack(await reloadTrack('audio', selected, http, ctx, policy), override),
                sink: merger.audio ?? undefined,
              })
            : null,
        ]);
      } catch (err) {
        await merger.abort();
        throw err;
      }
      log.info({ video: videoFile, audio: audioFile }, 'all segments in; finishing the MP4');
      try {
        await merger.finish();
      } catch (err) {
        if (!isMoovReserveError(err)) throw err;
        // The stream has more samples than the moov reservation allows for (very high frame rates):
        // merge once more from the complete track files, with a second pass for the moov.
        log.warn(
          { moovReserve },
          'the reserved moov space was too small; merging again from the track files',
        );
        await runTool(
          ctx.ffmpeg.ffmpeg,
          buildMergeArgs({
            main: { file: videoFile },
            audio: audioFile ? { file: audioFile } : null,
            output: merged,
            moovReserve: null,
          }),
          { signal },
        );
      }
      const out = await ffprobe(ctx.ffmpeg.ffprobe, merged, signal);
      const duration = Number(out.format.duration);
      checkDuration(Number.isFinite(duration) ? duration : null, videoPlan);
      const v = out.streams.find((s) => s.codec_type === 'video' && s.width && s.height);
      const resolution = v
        ? `${v.width}x${v.height}`
        : selected.variant
          ? formatResolution(selected.variant)
          : null;
      const size = (await stat(merged)).size;
      const outputPath = await publishFile(merged, config.output_path, job.video_name, '.mp4');
      return {
        status: 'completed',
        output_path: outputPath,
        resolution,
        video_name: path.basename(outputPath, '.mp4'),
        original_url: job.request.url,
        file_size_mb: Math.round((size / (1024 * 1024)) * 100) / 100,
        file_size_bytes: size,
        duration_seconds: Number.isFinite(duration) ? duration : null,
        segment_count: videoPlan.segmentCount,
        container: 'mp4',
      };
    } catch (err) {
      // SEGMENT and KEY errors wrap a refused hop; the job must still fail with the guard's code.
      throw surfaceForbidden(err);
    } finally {
      await http.destroy();
    }
  },
} satisfies Downloader;
