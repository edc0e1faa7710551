/**
 * ffmpeg arguments for what is made from a finished MP4 (pure): the Matroska copy of it
 * (`container: "mkv"`) and its poster frame (`thumbnail: true`).
 */
import { type FileTags, metadataArgs } from '../file-tags.js';
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
