/**
 * The HLS job: choose the streams, download their tracks (concurrently, in order, into track files
 * kept for resuming), mux them into one MP4 while they arrive, check the result, publish it.
 *
 * - The mux: H.264/AAC MPEG-TS and fMP4 tracks in this process (pipeline/mux/in-process.ts), anything else
 *   through ffmpeg's pipes; chosen from the tracks' first bytes (pipeline/mux/choose.ts). A stream the
 *   in-process remux declines midway is merged by ffmpeg from the track files.
 * - Discontinuities: a plan whose segments change timestamps or codec parameters is merged from the
 *   track files afterwards, one run at a time (media/ffmpeg/merge-args.ts concatList), not through the pipes.
 * - Subtitles: stitched before ffmpeg starts (it opens every input first), which needs the main
 *   track's first timestamp; the tracks download meanwhile, their pipes waiting.
 * - Live playlists are recorded (live-recording.ts) until they end, max_duration, or DELETE.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { clipRange } from '../../jobs/clip-range.js';
import type { JobRequest, JobResult } from '../../jobs/types.js';
import { moovReserveFor } from '../../media/ffmpeg/merge-args.js';
import { ffprobe, type ProbeResult } from '../../media/ffmpeg/run.js';
import { probeIsoBmff } from '../../media/mp4-probe.js';
import { HttpClient } from '../../net/client.js';
import { transferLimits } from '../../net/deadlines.js';
import { type GuardOptions, surfaceForbidden } from '../../net/guard.js';
import { mergeHeaders } from '../../net/headers.js';
import { jobRateLimiter } from '../../net/rate-limiter.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../../net/retry.js';
import { selectionOf } from '../../playlist/dash/mpd-selection.js';
import { GabeError } from '../../service/errors.js';
import { ensureSpace, publishFile } from '../../storage/paths.js';
import type { DownloadContext, Downloader } from '../context.js';
import { finishOutput, publishPoster } from '../output-extras.js';
import { clipFile } from './clip-cut.js';
import { clipPreroll } from './clip-preroll.js';
import { containerExt, JobMux } from './job-mux.js';
import { concurrencyOf, type JobPlan, keyOverride, totalsOf, trackJobs } from './job-plan.js';
import { jobKeys, type KeyCache } from './key-cache.js';
import type { LiveOutcome } from './live-recording.js';
import { checkStreams, durationWarning, publishSidecars, resolutionOf } from './output-checks.js';
import { isLive, type PlaylistSource, reloadTrack, type Selected, selectStreams } from './renditions.js';
import { downloadTrack, type TrackResult } from './track-download.js';
import { type KeyOverride, planTrack } from './track-plan.js';

/** Test seams: the destination guard's (net/guard.ts) and the moov reservation's; the service passes none. */
export interface HlsSeams {
  guard?: GuardOptions;
  moovReserve?: (seconds: number) => number | null;
}

/** What the tracks brought: their files' contents and, for a live stream, how the recording ended. */
interface Fetched {
  results: TrackResult[];
  outcome: LiveOutcome | null;
}

/** The file to publish (the merged one, or the clip cut from it) as probed, and its notes. */
interface Finished {
  file: string;
  out: ProbeResult;
  duration: number;
  warnings: string[];
}

/** One HLS job, phase by phase: select, plan, startMux, fetch, finish, publish. */
class HlsJob {
  private readonly request: JobRequest;
  private readonly audioOnly: boolean;
  private readonly override: KeyOverride | null;
  private readonly concurrency: ReturnType<typeof concurrencyOf>;
  private readonly policy: RetryPolicy;
  private readonly http: HttpClient;
  private readonly src: PlaylistSource;
  private readonly keys: KeyCache;
  // Ends the live reload loops when the job fails elsewhere (they would sleep on otherwise).
  private readonly over = new AbortController();

  constructor(
    private readonly ctx: DownloadContext,
    private readonly seams: HlsSeams,
  ) {
    const { config } = ctx;
    this.request = ctx.job.request;
    this.audioOnly = this.request.audio_only === true;
    this.override = keyOverride(this.request);
    this.concurrency = concurrencyOf(ctx);
    this.policy = { ...DEFAULT_RETRY_POLICY, maxRetries: config.max_retries };
    this.http = new HttpClient({
      ...transferLimits(config),
      proxy: this.request.proxy ?? config.proxy,
      proxyFrom: this.request.proxy ? 'request' : 'config',
      connections: this.concurrency.main.max + this.concurrency.audio.max + 2,
      allowPrivateNetworks: config.allow_private_networks,
      guard: seams.guard,
      headers: mergeHeaders(config.headers, this.request.headers),
      jobUrl: this.request.url,
      limiter: jobRateLimiter(this.request.max_speed, ctx.serviceLimiter),
    });
    const limiter = this.http.limiter;
    // Segments count when whole; under a limit, speed_bps follows the bytes as they are read.
    if (limiter) ctx.progress.measureBy(() => limiter.granted);
    this.src = { http: this.http, ctx, policy: this.policy };
    this.keys = jobKeys(this.src, this.request);
  }

  async run(): Promise<JobResult> {
    try {
      const selected = await this.select();
      const plan = await this.plan(selected, await this.preroll(selected));
      const mux = this.startMux(plan);
      const fetched = await this.fetch(plan, mux);
      const finished = await this.finish(plan, mux, fetched);
      return await this.publish(plan, mux, fetched, finished);
    } catch (err) {
      // SEGMENT and KEY errors wrap a refused hop; the job must still fail with the guard's code.
      throw surfaceForbidden(err);
    } finally {
      this.over.abort();
      await this.http.destroy();
    }
  }

  /** The variant and renditions to download (playlist/selection.ts over the master playlist). */
  private select = (): Promise<Selected> => selectStreams(this.src);

  /** A clip's segments before its window, for the keyframe at or before its start (clip-preroll.ts). */
  private async preroll({ main }: Selected): Promise<number> {
    const clip = clipRange(this.request);
    if (!clip || isLive(main.media) || this.audioOnly) return 0;
    return clipPreroll({ src: this.src, media: main.media, clip, keys: this.keys, override: this.override });
  }

  /** The tracks' plans (a live track's recording, resumed from its checkpoint), totals, disk space. */
  private async plan(selected: Selected, preroll: number): Promise<JobPlan> {
    const { ctx, request, audioOnly, override, src } = this;
    const live = isLive(selected.main.media);
    const clip = clipRange(request);
    if (live && clip) throw new GabeError('VALIDATION', 'start/end apply to VOD; use max_duration for live');
    const stop = live ? (ctx.markLive?.() ?? new AbortController().signal) : null;
    const over = this.over.signal;
    const trackOptions = { ctx, src, selected, override, audioOnly, stop, over, preroll };
    const { tracks, mainIsAudio, selection } = await trackJobs(trackOptions);
    const main = tracks[0]!;
    const audio = tracks[1] ?? null;
    if (live) ctx.log.info({ max_duration: request.max_duration ?? null }, 'live playlist: recording');
    ctx.progress.setTotals(totalsOf(tracks));
    ctx.reportProgress();
    const estimate =
      ((selected.variant?.bandwidth ?? 0) / 8) * (live ? (request.max_duration ?? 0) : main.plan.duration);
    if (estimate > 0) await ensureSpace(ctx.tempDir, estimate * 2);
    if (selection?.skipped.segments) ctx.log.info({ skipped: selection.skipped }, 'skipping segments');
    return { selected, live, mainIsAudio, tracks, main, audio, clip, selection };
  }

  /** The mux, waiting for the tracks' first bytes: subtitles, the moov reservation, piped or not. */
  private startMux({ selected, live, tracks, main, audio, clip, selection }: JobPlan): JobMux {
    const { ctx, request, seams } = this;
    const subtitleTracks = live || this.audioOnly ? [] : selected.subtitles;
    if (live && selected.subtitles.length > 0) ctx.log.info('subtitles are left out of live recordings');
    // A clip's or skipped segments' subtitles are cut as the video is (subtitle-cut.ts).
    const { from, removed } = selection ?? { from: 0, removed: [] };
    const cut = clip || removed.length > 0 ? { from, removed, clip } : null;
    // Discontinuities known up front: merged from the track files, run by run, after the download.
    const piped = !tracks.some((t) => t.plan.runDurations.length > 1);
    const moovReserve = seams.moovReserve
      ? seams.moovReserve(main.plan.duration)
      : live
        ? request.max_duration
          ? moovReserveFor(request.max_duration)
          : null
        : main.plan.unknownDurations === 0
          ? moovReserveFor(main.plan.duration)
          : null;
    const { audioOnly, src } = this;
    // A clip's merged file is not the one published: nothing to upload while it is written.
    const announce = clip === null;
    const audioLanguage = selected.audio?.rendition.language ?? selected.muxedAudioLanguage ?? null;
    const muxed = { piped, moovReserve, announce, audioLanguage, playlist: selected.main.media };
    return new JobMux({ ctx, src, main, audio, audioOnly, subtitleTracks, cut, ...muxed });
  }

  /** Every track downloaded (live: recorded) while the mux opens and takes their bytes. */
  private async fetch({ selected, live, tracks, main }: JobPlan, mux: JobMux): Promise<Fetched> {
    const { ctx, http, policy, keys } = this;
    const { signal, log } = ctx;
    const common = { http, policy, keys, signal, log, progress: ctx.progress };
    const downloads = tracks.map((t, i) => {
      t.live?.onChange(() => {
        ctx.progress.setTotals(totalsOf(tracks));
        ctx.reportProgress();
      });
      return downloadTrack({
        ...common,
        ...{ reportProgress: ctx.reportProgress, onRetry: ctx.onRetry },
        ...{ plan: t.plan, file: t.file, label: t.label, growth: t.live ?? undefined, resume: t.resume },
        concurrency: t === main ? this.concurrency.main : this.concurrency.audio,
        // The variant's BANDWIDTH covers the main track (and what is muxed with it), not audio's.
        bitrate: t === main ? (selected.variant?.bandwidth ?? null) : null,
        refresh: async () => planTrack(await reloadTrack(this.src, selected, t.which), this.override),
        sink: mux.sinkFor(i),
        onData: (buffers, fetch) => {
          mux.see(i, buffers, fetch);
          if (t === main && live && fetch)
            for (const p of fetch.pieces) if (p.kind === 'segment') ctx.progress.addRecorded(p.duration);
        },
      }).finally(() => mux.ended(i));
    });
    const recordings = tracks.map((t) => t.live?.record() ?? null);
    try {
      const [results] = await Promise.all([Promise.all(downloads), mux.open(), ...recordings]);
      const outcome = (await recordings[0]) ?? null;
      mux.tracksDone();
      return { results, outcome };
    } catch (err) {
      await mux.abort(err);
      throw err;
    }
  }

  /**
   * The MP4 finished (a clip cut from it, clip-cut.ts), then checked: its streams, its duration
   * against the playlist's.
   */
  private async finish(
    { selected, tracks, main, audio, mainIsAudio, clip, selection }: JobPlan,
    mux: JobMux,
    fetched: Fetched,
  ): Promise<Finished> {
    const { ctx } = this;
    ctx.log.info({ tracks: tracks.map((t) => t.label) }, 'all segments in; finishing the MP4');
    await mux.finish(fetched.results);
    const input = { input: mux.output, subtitles: await mux.clipSubtitles(), ctx };
    const cut = clip && selection && (await clipFile(ctx.ffmpeg, { ...input, clip, selection }));
    const file = cut ? cut.file : mux.output;
    // Our own MP4 (moov in front): read in-process; ffprobe only if it looks unusual.
    const out = (await probeIsoBmff(file)) ?? (await ffprobe(ctx.ffmpeg.ffprobe, file, ctx.signal, 'mov'));
    const duration = Number(out.format.duration);
    // What the file must hold: the separate audio rendition, and video when the variant says it has
    // a picture (a media playlist alone does not say).
    checkStreams(out, {
      video: !this.audioOnly && (selected.variant?.resolution ?? null) !== null,
      audio: audio !== null || mainIsAudio,
    });
    const warnings = [...mux.warnings, ...(selection?.warnings ?? []), ...(cut ? cut.warnings : [])];
    // A clip's file is shorter than its segments: the check applies to whole segments only.
    const listed = clip
      ? null
      : durationWarning(
          Number.isFinite(duration) ? duration : null,
          fetched.results[0]!.seconds,
          main.plan.unknownDurations > 0,
        );
    if (listed) warnings.push(listed);
    if (warnings.length > 0) ctx.log.warn({ warnings }, 'the file is complete; read it with these notes');
    return { file, out, duration, warnings };
  }

  /** The file moved into the output folder (the subtitles beside it), and the job's result. */
  private async publish(
    { selected, clip, selection }: JobPlan,
    mux: JobMux,
    { results, outcome }: Fetched,
    { file, out, duration, warnings }: Finished,
  ): Promise<JobResult> {
    const { audioOnly, ctx } = this;
    const seconds = Number.isFinite(duration) ? duration : null;
    const hasVideo = out.streams.some((s) => s.codec_type === 'video');
    const mp4 = { file, ext: containerExt(audioOnly), container: audioOnly ? 'm4a' : 'mp4', hasVideo };
    const final = await finishOutput(ctx, { ...mp4, audioOnly, duration: seconds });
    const { ext, file: finished } = final;
    const size = (await stat(finished)).size;
    const outputPath = await publishFile(finished, ctx.config.output_path, ctx.job.video_name, ext);
    const result: JobResult = {
      status: 'completed',
      output_path: outputPath,
      resolution: audioOnly ? null : resolutionOf(out, selected.variant),
      video_name: path.basename(outputPath, ext),
      original_url: this.request.url,
      file_size_mb: Math.round((size / (1024 * 1024)) * 100) / 100,
      file_size_bytes: size,
      duration_seconds: seconds,
      segment_count: results[0]!.segments,
      container: final.container,
      source_format: selectionOf(selected.main.url) ? 'dash' : 'hls',
    };
    if (final.poster) result.thumbnail_path = await publishPoster(final.poster, outputPath);
    warnings.push(...final.warnings);
    if (mux.subtitles.length > 0) result.subtitles = await publishSidecars(outputPath, mux.subtitles);
    if (outcome) result.live = { ended: outcome.reason, missed_segments: outcome.missed };
    if (warnings.length > 0) result.warnings = warnings;
    if (clip) result.clip = clip;
    const skipped = (selection ?? outcome)?.skipped;
    if (skipped?.segments) result.skipped = skipped;
    return result;
  }
}

export const hlsDownloader = {
  async run(ctx: DownloadContext, seams: HlsSeams = {}): Promise<JobResult> {
    return new HlsJob(ctx, seams).run();
  },
} satisfies Downloader;
