/**
 * ffmpeg arguments for what is made from a downloaded or finished file (pure): a clip cut out of it
 * (`start`/`end`), the Matroska copy (`container: "mkv"`) and the poster frame (`thumbnail: true`).
 */
import { type FileTags, metadataArgs } from '../file-tags.js';
import { type SubtitleInput, subtitleInputArgs, subtitleOutputArgs } from './merge-args.js';
import { safeInput } from './run.js';

/** The demuxers a finished MP4 of ours is read with. */
const MP4_DEMUXER = 'mov';

/**
 * The MP4 remuxed into Matroska, every stream copied: mov_text subtitles, which Matroska does not
 * carry, become SubRip (text either way; WebVTT's cue settings were already lost to mov_text). The
 * stream languages and titles come along with the streams; the tags are written again in case the
 * input had none.
 */
export function matroskaArgs(input: string, output: string, tags?: FileTags): string[] {
  return [
    ...['-hide_banner', '-nostdin', '-y', '-loglevel', 'error'],
    ...safeInput('file', MP4_DEMUXER),
    ...['-i', input, '-map', '0', '-c', 'copy', '-c:s', 'srt'],
    ...metadataArgs(tags),
    ...['-f', 'matroska', output],
  ];
}

export interface ClipCopyOptions {
  /** What the input may be read as (safeInput): our own MP4 ('mov'), or a downloaded file. */
  demuxers?: string;
  /** Only video and audio: for a source whose other streams cannot go into an MP4. */
  avOnly?: boolean;
  /** Written over the input's own (which -map_metadata 0 keeps). */
  tags?: FileTags;
  /**
   * WebVTT files timed from the clip's start, added as mov_text (ffmpeg's own cut of a text track
   * drops the cue running at S and shifts the rest by the distance from S to the keyframe before it),
   * `shift` seconds later (where the main track starts in the file).
   */
  subtitles?: { inputs: readonly SubtitleInput[]; shift: number };
}

/**
 * [from, to) seconds of the input's timeline cut out by stream copy, as `ffmpeg -ss S -to E -i in -c
 * copy` cuts: -ss and -to are input options, so the demuxer seeks to the keyframe at or before S (the
 * frames up to S stay, for decoding, hidden by an edit list) and stops reading at E. Every stream
 * and the metadata kept, the moov in front.
 */
export function clipCopyArgs(
  input: string,
  output: string,
  from: number,
  to: number | null,
  o: ClipCopyOptions = {},
): string[] {
  const subtitles = o.subtitles?.inputs ?? [];
  return [
    ...['-hide_banner', '-nostdin', '-y', '-loglevel', 'error'],
    ...safeInput('file', o.demuxers ?? MP4_DEMUXER),
    ...['-ss', from.toFixed(6)],
    ...(to === null ? [] : ['-to', to.toFixed(6)]),
    ...['-i', input],
    ...subtitles.flatMap((s) => subtitleInputArgs(s, o.subtitles?.shift)),
    ...(o.avOnly ? ['-map', '0:v?', '-map', '0:a?'] : ['-map', '0']),
    ...subtitles.flatMap((_, i) => ['-map', `${i + 1}:s`]),
    ...['-c', 'copy', ...subtitleOutputArgs(subtitles), '-map_metadata', '0', ...metadataArgs(o.tags)],
    ...['-movflags', '+faststart', '-f', 'mp4', output],
  ];
}

/** Widest poster written: a list thumbnail, not a still of the full picture. */
export const POSTER_MAX_WIDTH = 640;

/**
 * Where the poster frame is taken: a tenth into the file (past a black or title first frame), at
 * most 10 s in (a long file's poster should not cost a long seek), 0 for an unknown duration.
 */
export function posterTime(durationSeconds: number | null): number {
  if (durationSeconds === null || !(durationSeconds > 0)) return 0;
  return Math.min(durationSeconds * 0.1, 10);
}

/**
 * One frame as a JPEG: the input seeked to the keyframe at or before `seconds` (input-side -ss
 * without accurate seek, so nothing past it is decoded), scaled down to at most POSTER_MAX_WIDTH
 * with an even height, quality 3 of mjpeg's 2 (best) to 31.
 */
export function posterArgs(input: string, output: string, seconds: number): string[] {
  return [
    ...['-hide_banner', '-nostdin', '-y', '-loglevel', 'error'],
    ...safeInput('file', MP4_DEMUXER),
    ...['-ss', seconds.toFixed(3), '-noaccurate_seek', '-i', input],
    ...['-map', '0:v:0', '-frames:v', '1', '-an', '-sn'],
    ...['-vf', `scale='min(${POSTER_MAX_WIDTH},iw)':-2`, '-q:v', '3'],
    ...['-f', 'image2', '-update', '1', output],
  ];
}
