/**
 * ffmpeg arguments for turning downloaded tracks into one MP4 (pure: tested without running ffmpeg).
 * Stream copy only: Gabe never re-encodes, so the output is bit-for-bit the stream's own video.
 *
 * Normally the tracks arrive on pipes while they download (`pipe:0` the main track, `pipe:3` a
 * separate audio rendition), so the MP4 is muxed as the segments come in, with no second pass over
 * the data. Merging from the track files on disk is the fallback.
 */
import { type FileTags, metadataArgs } from '../file-tags.js';
import { iso639_2 } from '../language.js';
import { SEGMENT_DEMUXERS, safeInput } from './run.js';

/**
 * A track read from a pipe (file descriptor of the ffmpeg process), from a file, or from an ffconcat
 * list of the file's discontinuity runs (concatList).
 */
export type TrackInput = { pipe: number } | { file: string } | { concat: string };

export interface SubtitleInput {
  /** A WebVTT file on the output's timeline. */
  file: string;
  /** RFC 5646 tag from the playlist, or null. */
  language: string | null;
  title: string;
}

export interface MergeInput {
  /** The main track: video (with or without audio), or audio for an audio-only stream. */
  main: TrackInput;
  /** A separate audio rendition, replacing any audio in the main track. */
  audio: TrackInput | null;
  /** WebVTT tracks to mux as mov_text. */
  subtitles?: readonly SubtitleInput[];
  /** Only the audio (an .m4a): video streams are left out. */
  audioOnly?: boolean;
  output: string;
  /**
   * Bytes reserved at the start of the file for the moov box, so it goes in front without the second
   * pass over the whole file that +faststart costs; null = +faststart.
   */
  moovReserve: number | null;
  /**
   * Seconds each track starts after the earliest on the renditions' shared clock (start-time.ts):
   * ffmpeg starts every input at 0, and `-itsoffset` keeps the offset a playlist gives them.
   */
  offsets?: { main: number; audio: number };
  /** Title and source written into the file (file-tags.ts). */
  tags?: FileTags;
  /** RFC 5646 tag of the audio rendition (HLS LANGUAGE) the audio comes from, for its stream. */
  audioLanguage?: string | null;
}

/** The file descriptors the tracks are written to when they come through pipes. */
export const MERGE_PIPES = { main: 0, audio: 3 } as const;

/**
 * Room for the moov of `seconds` of media: its sample tables cost at most ~24 bytes per video frame
 * (size, composition offset, time-to-sample, sync) and ~12 per audio frame; 60 fps video with 48 kHz
 * AAC is ~2 KB a second. 3 KB a second covers that with margin, and the unused rest stays as a `free`
 * box (about 0.5% of a typical stream). If it still does not fit, ffmpeg fails at the end and the
 * caller merges again from the track files with +faststart.
 */
export function moovReserveFor(seconds: number): number | null {
  if (!Number.isFinite(seconds) || seconds <= 0) return null;
  const bytes = 128 * 1024 + Math.ceil(seconds) * 3 * 1024;
  // Beyond ~6 hours the padding would pass 64 MB: such a file pays the +faststart pass instead.
  return bytes <= MAX_MOOV_RESERVE ? bytes : null;
}

const MAX_MOOV_RESERVE = 64 * 1024 * 1024;

/** ffmpeg's complaint when the reserved moov space was too small (libavformat/movenc.c). */
export function isMoovReserveTooSmall(stderr: string): boolean {
  return /reserved_moov_size is too small/.test(stderr);
}

/** `-itsoffset` for an input that starts `seconds` after the earliest (none for 0). */
function offsetArgs(seconds: number | undefined): string[] {
  return seconds && seconds > 0 ? ['-itsoffset', seconds.toFixed(6)] : [];
}

function inputArgs(track: TrackInput, offset: number | undefined): string[] {
  const shift = offsetArgs(offset);
  if ('file' in track) return [...safeInput('file', SEGMENT_DEMUXERS), ...shift, '-i', track.file];
  if ('concat' in track) {
    // The list is ours; its entries are subfile: slices of our own track file, nothing else.
    return [
      '-f',
      'concat',
      '-safe',
      '0',
      ...safeInput('file,subfile', `concat,${SEGMENT_DEMUXERS}`),
      ...shift,
      '-i',
      track.concat,
    ];
  }
  return [
    ...safeInput('pipe', SEGMENT_DEMUXERS),
    // Input threads hand packets to the muxer through this queue; with two live pipes a deeper queue
    // lets the faster track run ahead instead of blocking its writer on every interleave.
    '-thread_queue_size',
    '1024',
    ...shift,
    '-i',
    `pipe:${track.pipe}`,
  ];
}

/** A WebVTT file as an input, `shift` seconds later than its cue times. */
export function subtitleInputArgs(s: SubtitleInput, shift?: number): string[] {
  return [...safeInput('file', 'webvtt'), ...offsetArgs(shift), '-f', 'webvtt', '-i', s.file];
}

/** The subtitle streams as mov_text (the only text MP4 players read), with language and title. */
export function subtitleOutputArgs(subtitles: readonly SubtitleInput[]): string[] {
  if (subtitles.length === 0) return [];
  return [
    ...['-c:s', 'mov_text'],
    ...subtitles.flatMap((s, i) => [
      ...[`-metadata:s:s:${i}`, `language=${iso639_2(s.language)}`],
      ...[`-metadata:s:s:${i}`, `title=${s.title}`],
    ]),
  ];
}

export function buildMergeArgs(input: MergeInput): string[] {
  const args = ['-hide_banner', '-nostdin', '-y', '-loglevel', 'error'];
  const offsets = input.audio ? input.offsets : undefined;
  args.push(...inputArgs(input.main, offsets?.main));
  if (input.audio) args.push(...inputArgs(input.audio, offsets?.audio));
  const subtitles = input.audioOnly ? [] : (input.subtitles ?? []);
  const first = input.audio ? 2 : 1;
  // Subtitles are timed from the main track's start (subtitles.ts), so they move with it.
  for (const s of subtitles) args.push(...subtitleInputArgs(s, offsets?.main));
  // '?' makes a map optional: an audio-only or video-only stream merges without error. Data and ID3
  // timed-metadata streams are left out on purpose: MP4 cannot carry them. ADTS AAC needs no explicit
  // aac_adtstoasc: the MP4 muxer inserts it (ffmpeg >= 4).
  if (!input.audioOnly) args.push('-map', '0:v?');
  args.push('-map', input.audio ? '1:a?' : '0:a?');
  subtitles.forEach((_, i) => {
    args.push('-map', `${first + i}:s`);
  });
  args.push('-c', 'copy', ...subtitleOutputArgs(subtitles));
  args.push(...metadataArgs(input.tags));
  // Given only when the audio is a rendition's (separate, or audio_only's main): the rest stays 'und'.
  if (input.audioLanguage) args.push('-metadata:s:a:0', `language=${iso639_2(input.audioLanguage)}`);
  // moov in front, so the file starts playing in a browser before it has fully loaded.
  if (input.moovReserve === null) args.push('-movflags', '+faststart');
  else args.push('-moov_size', String(input.moovReserve));
  args.push('-f', 'mp4', input.output);
  return args;
}

/**
 * An ffconcat list of a track file's discontinuity runs, as `subfile` slices: each run is demuxed
 * on its own and placed right after the previous one for the playlist's EXTINF time (`duration`), so
 * a run whose timestamps restart, or whose audio is shorter than its video (an inserted ad), neither
 * breaks the timeline nor shifts the audio against the video of the runs after it.
 */
export function concatList(
  file: string,
  runs: readonly { start: number; end: number; seconds: number | null }[],
): string {
  const lines = ['ffconcat version 1.0'];
  for (const r of runs) {
    const url = `subfile,,start,${r.start},end,${r.end},,:${file}`;
    lines.push(`file '${url.replaceAll("'", "'\\''")}'`);
    if (r.seconds !== null && r.seconds > 0) lines.push(`duration ${r.seconds.toFixed(6)}`);
  }
  return `${lines.join('\n')}\n`;
}
