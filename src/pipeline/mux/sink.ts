/**
 * What the tracks write into while they download, and what muxes them: ffmpeg's pipes (ffmpeg-pipe.ts)
 * or the in-process remux (in-process.ts), chosen by choose.ts.
 */
import type { SubtitleInput } from '../../media/ffmpeg/merge-args.js';
import type { FileTags } from '../../media/file-tags.js';

/** Where a track's bytes go, in playlist order, as they are written to its file. */
export interface TrackSink {
  /**
   * Resolves true when the sink has copied the bytes (the in-process remux): the caller may reuse
   * their buffers then. Otherwise (a pipe into ffmpeg) the buffers may still be queued.
   */
  write(chunks: readonly Buffer[]): Promise<boolean | undefined>;
}

/** What muxes the tracks while they download: ffmpeg (Merger) or the in-process remux (in-process.ts). */
export interface TrackMerger {
  readonly main: TrackSink;
  readonly audio: TrackSink | null;
  /** What the finished file should be read with (damage found, odd offsets), once finish() is done. */
  readonly warnings?: readonly string[];
  /** Ends every track and waits for the file to be complete. */
  finish(): Promise<void>;
  /** Stops after a failure elsewhere; the partial output is removed. */
  abort(): Promise<void>;
}

export interface MergerOptions {
  ffmpeg: string;
  separateAudio: boolean;
  audioOnly?: boolean;
  subtitles?: readonly SubtitleInput[];
  output: string;
  moovReserve: number | null;
  signal: AbortSignal;
  /** Where the tracks start on the renditions' shared clock (MergeInput.offsets). */
  offsets?: { main: number; audio: number };
  /** Title and source written into the file. */
  tags?: FileTags;
  /** The separate audio rendition's language tag (RFC 5646), for its track. */
  audioLanguage?: string | null;
}
