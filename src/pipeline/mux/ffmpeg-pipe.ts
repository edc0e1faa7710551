import type { Writable } from 'node:stream';
import { buildMergeArgs, isMoovReserveTooSmall, MERGE_PIPES } from '../../media/ffmpeg/merge-args.js';
import { type RunResult, runTool } from '../../media/ffmpeg/run.js';
import { FfmpegExitError, GabeError, MoovReserveError, toGabeError } from '../../service/errors.js';
import type { MergerOptions, TrackMerger, TrackSink } from './sink.js';

/** ffmpeg refused the data: it is not media, or not what the playlist says. */
function mergeError(err: unknown): GabeError {
  // More samples than the reserved moov space holds (very high frame rates): the data is fine, and the
  // job merges again from the track files (pipeline/hls/job-mux.ts), so the failure keeps its own type.
  if (err instanceof FfmpegExitError && isMoovReserveTooSmall(err.stderr)) {
    return new MoovReserveError(err.message, err.stderr);
  }
  const e = toGabeError(err);
  if (e.kind !== 'FFMPEG') return e;
  return new GabeError('INTEGRITY', `the downloaded segments are not media ffmpeg can read: ${e.message}`, {
    cause: e,
    details: e.details,
  });
}

/**
 * One ffmpeg process muxing the tracks into the MP4 while they download: each track writes into its
 * pipe as its segments come in order, and closing the pipes finishes the file. If ffmpeg gives up
 * early (data it cannot demux), every pending and later write fails with ffmpeg's own reason.
 */
export class Merger implements TrackMerger {
  readonly main: TrackSink;
  readonly audio: TrackSink | null;
  private readonly inputs: Writable[] = [];
  private readonly exited: Promise<RunResult>;
  /** Settles once ffmpeg has exited; a failure is kept, to be thrown by writes and by finish(). */
  private failure: GabeError | null = null;
  private done = false;
  private readonly stop = new AbortController();
  private readonly onAbort = () => this.kill();

  constructor(options: MergerOptions) {
    if (options.signal.aborted) this.kill();
    options.signal.addEventListener('abort', this.onAbort, { once: true });
    const args = buildMergeArgs({
      main: { pipe: MERGE_PIPES.main },
      audio: options.separateAudio ? { pipe: MERGE_PIPES.audio } : null,
      audioOnly: options.audioOnly,
      subtitles: options.subtitles,
      output: options.output,
      moovReserve: options.moovReserve,
      offsets: options.offsets,
      tags: options.tags,
      audioLanguage: options.audioLanguage,
    });
    this.exited = runTool(options.ffmpeg, args, {
      signal: this.stop.signal,
      inputs: {
        count: options.separateAudio ? 2 : 1,
        onInputs: (inputs) => this.inputs.push(...inputs),
      },
    });
    this.exited.then(
      () => {
        this.done = true;
        options.signal.removeEventListener('abort', this.onAbort);
      },
      (err: unknown) => {
        this.done = true;
        options.signal.removeEventListener('abort', this.onAbort);
        this.failure = mergeError(err);
      },
    );
    this.main = this.sink(0);
    this.audio = options.separateAudio ? this.sink(1) : null;
  }

  private sink(i: number): TrackSink {
    return {
      write: async (chunks) => {
        const stream = this.inputs[i];
        if (!stream) throw new GabeError('FFMPEG', 'ffmpeg could not be started for the merge');
        if (this.failure) throw this.failure;
        // One writev for the whole segment instead of a syscall per chunk.
        stream.cork();
        let full = false;
        for (const chunk of chunks) full = !stream.write(chunk) || full;
        stream.uncork();
        if (full) await this.drained(stream);
        return undefined;
      },
    };
  }

  /** Waits for the pipe to take more, or for ffmpeg to end (then throws why). */
  private drained(stream: Writable): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // The pipe closes when ffmpeg exits: its exit status says why.
      const whyGone = () =>
        this.exited.then(
          () => reject(new GabeError('INTEGRITY', 'ffmpeg stopped reading the media before its end')),
          () => reject(this.failure ?? new GabeError('INTEGRITY', 'ffmpeg stopped reading the media')),
        );
      // Closed before we listened: its 'close' has been emitted already.
      if (stream.destroyed) return void whyGone();
      const cleanup = () => {
        stream.off('drain', onDrain);
        stream.off('close', onGone);
        stream.off('error', onGone);
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onGone = () => {
        cleanup();
        void whyGone();
      };
      stream.on('drain', onDrain);
      stream.on('close', onGone);
      stream.on('error', onGone);
    });
  }

  /** Closes the pipes (end of every track) and waits for ffmpeg to write the file. */
  async finish(): Promise<void> {
    for (const s of this.inputs) s.end();
    try {
      await this.exited;
    } catch {
      throw this.failure ?? new GabeError('INTEGRITY', 'ffmpeg failed to merge the tracks');
    }
  }

  /**
   * SIGTERM alone does not end an ffmpeg whose input threads sit in read() on an open pipe: closing
   * the pipes too lets it exit at once instead of after the SIGKILL grace period.
   */
  private kill(): void {
    for (const s of this.inputs) s.destroy();
    this.stop.abort();
  }

  /** Stops ffmpeg after a failure elsewhere and waits for it to exit (its output is then removed). */
  async abort(): Promise<void> {
    if (!this.done) this.kill();
    await this.exited.catch(() => {});
  }
}
