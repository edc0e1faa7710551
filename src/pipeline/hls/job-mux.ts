/**
 * The HLS job's side of the mux: the tracks' pipes, held until the merger opens (the subtitles wait
 * for the main track's first timestamp, the choice of merger for the tracks' first bytes), and at the
 * end the file finished through the pipes or, when they cannot make it, merged from the track files.
 */
import path from 'node:path';
import { buildMergeArgs, type SubtitleInput, type TrackInput } from '../../media/ffmpeg/merge-args.js';
import { runTool } from '../../media/ffmpeg/run.js';
import { inputOffsets, trackClockStart } from '../../media/ffmpeg/start-time.js';
import type { FileTags } from '../../media/file-tags.js';
import type { MediaPlaylist } from '../../playlist/model.js';
import { GabeError, isGabeError, MoovReserveError } from '../../service/errors.js';
import type { DownloadContext } from '../context.js';
import { deferred } from '../deferred.js';
import { firstBytes, openMerger } from '../mux/choose.js';
import { deferredSink, originWatcher } from '../mux/deferred-start.js';
import { NativeDeclined } from '../mux/in-process.js';
import type { TrackMerger, TrackSink } from '../mux/sink.js';
import { jobTags } from '../output-extras.js';
import type { TrackJob } from './job-plan.js';
import { trackInput } from './output-checks.js';
import type { PlaylistSource, SubtitleTrack } from './renditions.js';
import { runTimes, type TimelineCut } from './subtitle-cut.js';
import { prepareSubtitles, runAnchors, type SubtitleFile } from './subtitle-tracks.js';
import type { TrackResult } from './track-download.js';
import type { Fetch } from './track-plan.js';

/** The published file's extension: `.m4a` for audio_only, else `.mp4`. */
export function containerExt(audioOnly: boolean): '.m4a' | '.mp4' {
  return audioOnly ? '.m4a' : '.mp4';
}

export interface JobMuxOptions {
  ctx: DownloadContext;
  src: PlaylistSource;
  main: TrackJob;
  audio: TrackJob | null;
  audioOnly: boolean;
  subtitleTracks: SubtitleTrack[];
  /** False when discontinuities known up front make the merge one from the track files afterwards. */
  piped: boolean;
  moovReserve: number | null;
  /** Announce the merged file to the results store while it is written (false: it is not the output). */
  announce?: boolean;
  /** The audio rendition's LANGUAGE when the audio comes from one, for the audio track. */
  audioLanguage: string | null;
  /**
   * The output is a clip, or lacks skipped segments: the subtitles are cut the same way. A clip's go
   * into the clip (clipSubtitles), not the merged file, whose cut would misplace them.
   */
  cut?: TimelineCut | null;
  /** The main track's whole media playlist, on whose timeline the subtitles are timed. */
  playlist?: MediaPlaylist;
}

/** A stitched subtitle file as ffmpeg's input. */
const asInput = (s: SubtitleFile): SubtitleInput => ({
  file: s.muxFile,
  language: s.language,
  title: s.name,
});

export class JobMux {
  /** The merge's output in the job's folder. */
  readonly output: string;
  private readonly watcher: ReturnType<typeof originWatcher>;
  // The in-process remux or ffmpeg: chosen from the tracks' first bytes (pipeline/mux/choose.ts).
  private readonly heads: ReturnType<typeof firstBytes>[];
  private readonly ready = deferred<TrackMerger>();
  private readonly sinks: (TrackSink & { flush(): Promise<void> })[];
  private merger: TrackMerger | null = null;
  private offsets: Promise<{ main: number; audio: number }> | null = null;
  /** The subtitle files stitched for the merge. */
  subtitles: SubtitleFile[] = [];
  /** Title and source written into the file. */
  private readonly tags: FileTags;

  constructor(private readonly o: JobMuxOptions) {
    this.output = path.join(o.ctx.tempDir, 'merged.mp4');
    this.tags = jobTags(o.ctx);
    this.watcher = originWatcher(() => o.main.plan.fmp4);
    if (o.subtitleTracks.length === 0) this.watcher.finish(null);
    this.heads = [o.main, o.audio].filter((t) => t !== null).map(() => firstBytes());
    this.ready.promise.catch(() => {});
    this.sinks = [
      deferredSink(this.ready.promise, (m) => m.main),
      deferredSink(this.ready.promise, (m) => m.audio),
    ];
  }

  /** What the merger noted about the file (damage found, odd offsets), once finished. */
  get warnings(): readonly string[] {
    return this.merger?.warnings ?? [];
  }

  /** The pipe track `i` (0 the main track, 1 the audio rendition) writes into, if the merge is piped. */
  sinkFor(i: number): TrackSink | undefined {
    return this.o.piped ? this.sinks[i] : undefined;
  }

  /** Track `i`'s bytes in file order: its first bytes choose the merger, the main track's start the subtitles. */
  see(i: number, buffers: readonly Buffer[], fetch: Fetch | null): void {
    this.heads[i]!.see(buffers, fetch);
    if (i === 0) this.watcher.see(buffers, fetch);
  }

  /** Track `i` has no more bytes (done or failed). */
  ended(i: number): void {
    this.heads[i]!.end();
  }

  /** Every track is in: the subtitles stop waiting for a first timestamp. */
  tracksDone(): void {
    this.watcher.finish(null);
  }

  /** ffmpeg with a separate audio rendition: where each track starts on the shared clock. */
  private trackOffsets(): Promise<{ main: number; audio: number }> {
    const { ffmpeg, signal, log } = this.o.ctx;
    this.offsets ??= (async () => {
      const starts = await Promise.all(
        this.heads.map(async (h) => trackClockStart(ffmpeg.ffprobe, await h.bytes, signal)),
      );
      const [main = 0, audio = 0] = inputOffsets(starts);
      log.debug({ starts, offsets: { main, audio } }, 'track starts on the shared clock');
      return { main, audio };
    })();
    return this.offsets;
  }

  /** Stitches the subtitles, then opens the merger the pipes wait for. */
  async open(): Promise<void> {
    const { ctx, src, subtitleTracks, piped } = this.o;
    try {
      // Several runs are merged from the files once all are in, and each run's clock is read then.
      if (!piped) return;
      const timing = { origin: this.watcher.origin, cut: this.o.cut ?? null };
      this.subtitles = await prepareSubtitles(src, subtitleTracks, ctx.tempDir, timing);
      this.merger = await openMerger({
        ffmpeg: ctx.ffmpeg.ffmpeg,
        separateAudio: this.o.audio !== null,
        audioOnly: this.o.audioOnly,
        subtitles: this.subtitleInputs(),
        output: this.output,
        moovReserve: this.o.moovReserve,
        tags: this.tags,
        audioLanguage: this.o.audioLanguage,
        signal: ctx.signal,
        native: ctx.config.native_remux && this.subtitleInputs().length === 0,
        heads: this.heads.map((h) => h.bytes),
        offsets: () => this.trackOffsets(),
        log: ctx.log,
        // An mkv is made from the finished MP4: nothing of the MP4 is worth uploading early.
        onOpen: (file, headerBytes) => {
          if (ctx.job.request.container === 'mkv') return;
          const publishAs = `${ctx.job.video_name}${containerExt(this.o.audioOnly)}`;
          if (this.o.announce !== false) ctx.onOutputFile?.({ path: file, publishAs, headerBytes });
        },
      });
      this.ready.resolve(this.merger);
    } catch (err) {
      this.ready.reject(err);
      throw err;
    }
  }

  /** A track failed: the pipes fail too, and the merger stops. */
  async abort(err: unknown): Promise<void> {
    this.ready.reject(err);
    await this.merger?.abort();
  }

  /** Ends the merge: through the pipes, or from the track files (discontinuities, a declined remux). */
  async finish(results: TrackResult[]): Promise<void> {
    const { log } = this.o.ctx;
    const runs = Math.max(...results.map((r) => r.runStarts.length));
    const merger = this.merger;
    if (merger && runs <= 1) {
      try {
        await this.sinks[0]!.flush();
        if (this.o.audio) await this.sinks[1]!.flush();
        await merger.finish();
      } catch (err) {
        if (err instanceof NativeDeclined) {
          // Something the in-process remux does not carry showed up midway (a new SPS, say).
          log.info({ reason: err.message }, 'remuxing with ffmpeg from the track files instead');
          await this.mergeFromFiles(results, this.o.moovReserve).catch((failed: unknown) => {
            // Damage both refuse: the decline names it where ffmpeg's stderr may not.
            if (!isGabeError(failed, 'FFMPEG')) throw failed;
            const message = `${failed.message} (the in-process remux had declined first: ${err.message})`;
            throw new GabeError('FFMPEG', message, { retryable: failed.retryable, cause: failed });
          });
        } else if (err instanceof MoovReserveError) {
          // More samples than the moov reservation allows for (very high frame rates): merge once
          // more from the complete track files, with a second pass for the moov.
          log.warn(
            { moovReserve: this.o.moovReserve },
            'the reserved moov space was too small; merging again from the track files',
          );
          await this.mergeFromFiles(results, null);
        } else {
          throw err;
        }
      }
    } else {
      // Discontinuities (known up front, or a live stream that brought some): run by run, from the files.
      await merger?.abort();
      if (!this.o.piped) await this.runSubtitles(results[0]!);
      log.info({ runs }, 'merging discontinuity runs from the track files');
      await this.mergeFromFiles(results, this.o.moovReserve);
    }
  }

  /**
   * Subtitles of a main track in several discontinuity runs, each run's cues on its own clock: an ad
   * or a joined stream restarts the timestamps, and the first run's clock would misplace the rest.
   */
  private async runSubtitles(main: TrackResult): Promise<void> {
    const { ctx, src, subtitleTracks, playlist } = this.o;
    if (subtitleTracks.length === 0 || !playlist) return;
    const { plan, file } = this.o.main;
    const anchors = await runAnchors(file, main, runTimes(plan.pieces, playlist), plan.fmp4);
    const timing = { origin: Promise.resolve(anchors[0]?.pts ?? null), cut: this.o.cut ?? null, anchors };
    this.subtitles = await prepareSubtitles(src, subtitleTracks, ctx.tempDir, timing);
  }

  /** The subtitles the merge takes: none for a clip (see clipSubtitles). */
  private subtitleInputs(): SubtitleInput[] {
    return this.o.cut?.clip ? [] : this.subtitles.map(asInput);
  }

  /**
   * A clip's subtitles, timed from the clip's start, and the seconds its main track starts after the
   * earliest track in the merged file (a separate audio rendition can start first), as the merge
   * shifts subtitles by.
   */
  async clipSubtitles(): Promise<{ inputs: SubtitleInput[]; shift: number }> {
    if (!this.o.cut?.clip || this.subtitles.length === 0) return { inputs: [], shift: 0 };
    const inputs = this.subtitles.map(asInput);
    return { inputs, shift: this.o.audio ? (await this.trackOffsets()).main : 0 };
  }

  private fileInput(t: TrackJob, r: TrackResult): Promise<TrackInput> {
    return trackInput(
      { file: t.file, label: t.label, result: r, runLengths: t.plan.runDurations },
      this.o.main.plan.runDurations,
      this.o.ctx.tempDir,
    );
  }

  private async mergeFromFiles(results: TrackResult[], reserve: number | null): Promise<void> {
    const { main, audio, ctx } = this.o;
    await runTool(
      ctx.ffmpeg.ffmpeg,
      buildMergeArgs({
        main: await this.fileInput(main, results[0]!),
        audio: audio ? await this.fileInput(audio, results[1]!) : null,
        audioOnly: this.o.audioOnly,
        subtitles: this.subtitleInputs(),
        output: this.output,
        moovReserve: reserve,
        tags: this.tags,
        audioLanguage: this.o.audioLanguage,
        offsets: audio ? await this.trackOffsets() : undefined,
      }),
      { signal: ctx.signal },
    );
  }
}
