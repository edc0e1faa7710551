/**
 * The HLS job: choose the streams, download their tracks (concurrently, in order, into track files
 * kept for resuming), mux them into one MP4 while they arrive, check the result, publish it.
 *
 * - The mux: H.264/AAC MPEG-TS in this process (pipeline/mux/in-process.ts), anything else through ffmpeg's pipes;
 *   chosen from the tracks' first bytes (pipeline/mux/choose.ts). A stream the in-process remux declines midway is
 *   merged by ffmpeg from the track files.
 * - Discontinuities: a plan whose segments change timestamps or codec parameters is merged from the
 *   track files afterwards, one run at a time (media/ffmpeg/merge-args.ts concatList), not through the pipes.
 * - Subtitles: stitched before ffmpeg starts (it opens every input first), which needs the main
 *   track's first timestamp; the tracks download meanwhile, their pipes waiting.
 * - Live playlists are recorded (live-recording.ts) until they end, max_duration, or DELETE.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { JobResult } from '../../jobs/types.js';
import { buildMergeArgs, moovReserveFor, type TrackInput } from '../../media/ffmpeg/merge-args.js';
import { ffprobe, runTool } from '../../media/ffmpeg/run.js';
import { inputOffsets, trackClockStart } from '../../media/ffmpeg/start-time.js';
import { probeIsoBmff } from '../../media/mp4-probe.js';
import { HttpClient } from '../../net/client.js';
import { transferLimits } from '../../net/deadlines.js';
import { type GuardOptions, surfaceForbidden } from '../../net/guard.js';
import { mergeHeaders } from '../../net/headers.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../../net/retry.js';
import { parseIv } from '../../playlist/keys.js';
import { formatResolution } from '../../playlist/selection.js';
import { MoovReserveError } from '../../service/errors.js';
import { ensureSpace, publishFile } from '../../storage/paths.js';
import type { DownloadContext, Downloader } from '../context.js';
import { deferred } from '../deferred.js';
import { firstBytes, openMerger } from '../mux/choose.js';
import { deferredSink, originWatcher } from '../mux/deferred-start.js';
import { NativeDeclined } from '../mux/in-process.js';
import type { TrackMerger } from '../mux/sink.js';
import { readCheckpoint } from './checkpoint.js';
import { KeyCache } from './key-cache.js';
import { type LiveOutcome, LiveRecording } from './live-recording.js';
import { checkStreams, durationWarning, publishSidecars, trackInput } from './output-checks.js';
import { isLive, type PlaylistSource, reloadTrack, selectStreams, type Track } from './renditions.js';
import { prepareSubtitles, type SubtitleFile } from './subtitle-tracks.js';
import { downloadTrack, type TrackResult } from './track-download.js';
import { emptyPlan, type KeyOverride, OVERRIDE_KEY_URI, planTrack, type TrackPlan } from './track-plan.js';

/** Test seams: the destination guard's (net/guard.ts) and the moov reservation's; the service passes none. */
export interface HlsSeams {
  guard?: GuardOptions;
  moovReserve?: (seconds: number) => number | null;
}

/** One track of the job: what to fetch, where it goes, and, for live streams, its recording. */
interface TrackJob {
  label: 'video' | 'audio';
  which: 'main' | 'audio';
  plan: TrackPlan;
  file: string;
  live: LiveRecording | null;
  /** Live: the fingerprint its checkpoints carry, and the checkpoint a restart found. */
  resume?: Parameters<typeof downloadTrack>[0]['resume'];
}

function keyOverride(request: DownloadContext['job']['request']): KeyOverride | null {
  if (!request.key && !request.iv) return null;
  return { key: Boolean(request.key), iv: request.iv ? parseIv(request.iv) : null };
}

export const hlsDownloader = {
  async run(ctx: DownloadContext, seams: HlsSeams = {}): Promise<JobResult> {
    const { job, config, log, signal } = ctx;
    const request = job.request;
    const multithreading = request.use_multithreading ?? config.use_multithreading;
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
      ...transferLimits(config),
      proxy: request.proxy ?? config.proxy,
      proxyFrom: request.proxy ? 'request' : 'config',
      connections: concurrency.max + audioConcurrency.max + 2,
      allowPrivateNetworks: config.allow_private_networks,
      guard: seams.guard,
      headers: mergeHeaders(config.headers, request.headers),
      jobUrl: request.url,
    });
    const src: PlaylistSource = { http, ctx, policy };
    // Ends the live reload loops when the job fails elsewhere (they would sleep on otherwise).
    const over = new AbortController();
    try {
      const selected = await selectStreams(src);
      const audioOnly = request.audio_only === true;
      const live = isLive(selected.main.media);
      const stop = live ? (ctx.markLive?.() ?? new AbortController().signal) : null;
      const override = keyOverride(request);
      // audio_only with a separate rendition: that rendition alone is the main track.
      const mainIsAudio = audioOnly && selected.audio !== null;
      const specs: { which: 'main' | 'audio'; label: 'video' | 'audio'; track: Track }[] = [
        {
          which: mainIsAudio ? 'audio' : 'main',
          label: mainIsAudio ? 'audio' : 'video',
          track: mainIsAudio ? selected.audio! : selected.main,
        },
      ];
      if (selected.audio && !mainIsAudio)
        specs.push({ which: 'audio', label: 'audio', track: selected.audio });

      const tracks: TrackJob[] = [];
      for (const spec of specs) {
        const file = path.join(ctx.tempDir, `${spec.label}.track`);
        const reload = async () => reloadTrack(src, selected, spec.which);
        if (!live) {
          tracks.push({
            label: spec.label,
            which: spec.which,
            plan: planTrack(spec.track.media, override),
            file,
            live: null,
          });
          continue;
        }
        const plan = emptyPlan(override);
        const fingerprint = `live|${new URL(spec.track.url).pathname}`;
        const checkpoint = await readCheckpoint(file, fingerprint);
        if (checkpoint) plan.lastMsn = checkpoint.lastMsn;
        const recorded = checkpoint?.seconds ?? 0;
        const recording = new LiveRecording(plan, spec.track.media, {
          reload,
          maxDuration: request.max_duration ? Math.max(0, request.max_duration - recorded) : null,
          stop: stop!,
          signal: AbortSignal.any([signal, over.signal]),
          log: log.child({ track: spec.label }),
        });
        tracks.push({
          label: spec.label,
          which: spec.which,
          plan,
          file,
          live: recording,
          resume: { checkpoint, fingerprint },
        });
      }
      const main = tracks[0]!;
      const audio = tracks[1] ?? null;
      if (live) log.info({ max_duration: request.max_duration ?? null }, 'live playlist: recording');

      const setTotals = () =>
        ctx.progress.setTotals({
          segments: tracks.reduce(
            (n, t) => n + t.plan.segmentCount + (t.resume?.checkpoint?.segments ?? 0),
            0,
          ),
          bytes: tracks.every((t) => t.plan.knownBytes !== null)
            ? tracks.reduce((n, t) => n + (t.plan.knownBytes ?? 0), 0)
            : null,
        });
      setTotals();
      ctx.reportProgress();
      const estimate =
        ((selected.variant?.bandwidth ?? 0) / 8) * (live ? (request.max_duration ?? 0) : main.plan.duration);
      if (estimate > 0) await ensureSpace(ctx.tempDir, estimate * 2);

      const keys = new KeyCache(async (uri) => {
        // The request key has an IV's form, 32 hex digits (validated with the request).
        if (uri === OVERRIDE_KEY_URI && request.key) return parseIv(request.key);
        const { data } = await withRetry(() => http.getBuffer(uri, { signal, maxBytes: 1024 }), policy, {
          signal,
        });
        return data;
      });
      const subtitleTracks = live || audioOnly ? [] : selected.subtitles;
      if (live && selected.subtitles.length > 0) log.info('subtitles are not recorded from live streams');
      // Discontinuities known up front: merged from the track files, run by run, after the download.
      const piped = !tracks.some((t) => t.plan.runDurations.length > 1);
      const merged = path.join(ctx.tempDir, 'merged.mp4');
      const moovReserve = seams.moovReserve
        ? seams.moovReserve(main.plan.duration)
        : live
          ? request.max_duration
            ? moovReserveFor(request.max_duration)
            : null
          : main.plan.unknownDurations === 0
            ? moovReserveFor(main.plan.duration)
            : null;

      const watcher = originWatcher(() => main.plan.fmp4);
      if (subtitleTracks.length === 0) watcher.finish(null);
      let merger: TrackMerger | null = null;
      let subtitles: SubtitleFile[] = [];
      const mergerReady = deferred<TrackMerger>();
      // The in-process remux or ffmpeg: chosen from the tracks' first bytes (pipeline/mux/choose.ts).
      const heads = tracks.map(() => firstBytes());
      let offsets: Promise<{ main: number; audio: number }> | null = null;
      // ffmpeg with a separate audio rendition: where each track starts on the shared clock.
      const trackOffsets = () =>
        (offsets ??= (async () => {
          const starts = await Promise.all(
            heads.map(async (h) => trackClockStart(ctx.ffmpeg.ffprobe, await h.bytes, signal)),
          );
          const [main = 0, audio = 0] = inputOffsets(starts);
          log.debug({ starts, offsets: { main, audio } }, 'track starts on the shared clock');
          return { main, audio };
        })());
      mergerReady.promise.catch(() => {});
      const sinks = {
        main: deferredSink(mergerReady.promise, (m) => m.main),
        audio: deferredSink(mergerReady.promise, (m) => m.audio),
      };
      const startMerger = async () => {
        subtitles = await prepareSubtitles(src, subtitleTracks, watcher.origin, ctx.tempDir);
        if (!piped) return;
        merger = await openMerger({
          ffmpeg: ctx.ffmpeg.ffmpeg,
          separateAudio: audio !== null,
          audioOnly,
          subtitles: subtitles.map((s) => ({ file: s.muxFile, language: s.language, title: s.name })),
          output: merged,
          moovReserve,
          signal,
          native: config.native_remux && subtitles.length === 0,
          heads: heads.map((h) => h.bytes),
          offsets: trackOffsets,
          log,
        });
        mergerReady.resolve(merger);
      };

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
      const downloads = tracks.map((t, i) => {
        t.live?.onChange(() => {
          setTotals();
          ctx.reportProgress();
        });
        const head = heads[i]!;
        return downloadTrack({
          ...common,
          plan: t.plan,
          file: t.file,
          concurrency: t === main ? concurrency : audioConcurrency,
          // The variant's BANDWIDTH covers the main track (and what is muxed with it), not audio's.
          bitrate: t === main ? (selected.variant?.bandwidth ?? null) : null,
          label: t.label,
          refresh: async () => planTrack(await reloadTrack(src, selected, t.which), override),
          sink: piped ? (t === main ? sinks.main : sinks.audio) : undefined,
          growth: t.live ?? undefined,
          resume: t.resume,
          onData:
            t === main
              ? (buffers, fetch) => {
                  head.see(buffers, fetch);
                  watcher.see(buffers, fetch);
                  if (live && fetch)
                    for (const p of fetch.pieces)
                      if (p.kind === 'segment') ctx.progress.addRecorded(p.duration);
                }
              : (buffers, fetch) => head.see(buffers, fetch),
        }).finally(() => head.end());
      });
      const recordings = tracks.map((t) => t.live?.record() ?? null);
      let results: TrackResult[];
      let outcome: LiveOutcome | null = null;
      try {
        const [res] = await Promise.all([
          Promise.all(downloads),
          startMerger().catch((err: unknown) => {
            mergerReady.reject(err);
            throw err;
          }),
          ...recordings,
        ]);
        results = res;
        outcome = (await recordings[0]) ?? null;
        watcher.finish(null);
      } catch (err) {
        mergerReady.reject(err);
        await (merger as TrackMerger | null)?.abort();
        throw err;
      }
      log.info({ tracks: tracks.map((t) => t.label) }, 'all segments in; finishing the MP4');

      const fileInput = (t: TrackJob, r: TrackResult): Promise<TrackInput> =>
        trackInput(
          { file: t.file, label: t.label, result: r, runLengths: t.plan.runDurations },
          main.plan.runDurations,
          ctx.tempDir,
        );
      const mergeFromFiles = async (reserve: number | null) => {
        await runTool(
          ctx.ffmpeg.ffmpeg,
          buildMergeArgs({
            main: await fileInput(main, results[0]!),
            audio: audio ? await fileInput(audio, results[1]!) : null,
            audioOnly,
            subtitles: subtitles.map((s) => ({ file: s.muxFile, language: s.language, title: s.name })),
            output: merged,
            moovReserve: reserve,
            offsets: audio ? await trackOffsets() : undefined,
          }),
          { signal },
        );
      };
      const runs = Math.max(...results.map((r) => r.runStarts.length));
      const pipedMerger = merger as TrackMerger | null;
      if (pipedMerger && runs <= 1) {
        try {
          await sinks.main.flush();
          if (audio) await sinks.audio.flush();
          await pipedMerger.finish();
        } catch (err) {
          if (err instanceof NativeDeclined) {
            // Something the in-process remux does not carry showed up midway (a new SPS, say).
            log.info({ reason: err.message }, 'remuxing with ffmpeg from the track files instead');
            await mergeFromFiles(moovReserve);
          } else if (err instanceof MoovReserveError) {
            // More samples than the moov reservation allows for (very high frame rates): merge once
            // more from the complete track files, with a second pass for the moov.
            log.warn(
              { moovReserve },
              'the reserved moov space was too small; merging again from the track files',
            );
            await mergeFromFiles(null);
          } else {
            throw err;
          }
        }
      } else {
        // Discontinuities (known up front, or a live stream that brought some): run by run, from the files.
        await pipedMerger?.abort();
        log.info({ runs }, 'merging discontinuity runs from the track files');
        await mergeFromFiles(moovReserve);
      }

      // Our own MP4 (moov in front): read in-process; ffprobe only if it looks unusual.
      const out = (await probeIsoBmff(merged)) ?? (await ffprobe(ctx.ffmpeg.ffprobe, merged, signal, 'mov'));
      const duration = Number(out.format.duration);
      // What the file must hold: the separate audio rendition, and video when the variant says it has
      // a picture (a media playlist alone does not say).
      checkStreams(out, {
        video: !audioOnly && (selected.variant?.resolution ?? null) !== null,
        audio: audio !== null || mainIsAudio,
      });
      const warnings = [...(pipedMerger?.warnings ?? [])];
      const listed = durationWarning(
        Number.isFinite(duration) ? duration : null,
        results[0]!.seconds,
        main.plan.unknownDurations > 0,
      );
      if (listed) warnings.push(listed);
      if (warnings.length > 0) log.warn({ warnings }, 'the file is complete; read it with these notes');
      const v = out.streams.find((s) => s.codec_type === 'video' && s.width && s.height);
      const resolution = audioOnly
        ? null
        : v
          ? `${v.width}x${v.height}`
          : selected.variant
            ? formatResolution(selected.variant)
            : null;
      const size = (await stat(merged)).size;
      const ext = audioOnly ? '.m4a' : '.mp4';
      const outputPath = await publishFile(merged, config.output_path, job.video_name, ext);
      const result: JobResult = {
        status: 'completed',
        output_path: outputPath,
        resolution,
        video_name: path.basename(outputPath, ext),
        original_url: request.url,
        file_size_mb: Math.round((size / (1024 * 1024)) * 100) / 100,
        file_size_bytes: size,
        duration_seconds: Number.isFinite(duration) ? duration : null,
        segment_count: results[0]!.segments,
        container: audioOnly ? 'm4a' : 'mp4',
      };
      if (subtitles.length > 0) result.subtitles = await publishSidecars(outputPath, subtitles);
      if (outcome) result.live = { ended: outcome.reason, missed_segments: outcome.missed };
      if (warnings.length > 0) result.warnings = warnings;
      return result;
    } catch (err) {
      // SEGMENT and KEY errors wrap a refused hop; the job must still fail with the guard's code.
      throw surfaceForbidden(err);
    } finally {
      over.abort();
      await http.destroy();
    }
  },
} satisfies Downloader;
