/**
 * Cutting a clip out of the downloaded source (whole, or the sparse copy of clip-source.ts) with
 * `ffmpeg -ss start -to end -c copy`: a stream copy that starts at the keyframe at or before `start`,
 * every stream and the metadata kept, the moov moved to the front.
 */
import type { ClipRange } from '../../jobs/clip-range.js';
import { runTool, safeInput, VIDEO_DEMUXERS } from '../../media/ffmpeg/run.js';
import { type FileTags, metadataArgs } from '../../media/file-tags.js';
import { GabeError, isGabeError } from '../../service/errors.js';
import type { DownloadContext } from '../context.js';
import { jobTags } from '../output-extras.js';

/**
 * ffmpeg's arguments for the clip of `input` into the MP4 `output`: every stream (`-map 0`), or with
 * `avOnly` only video and audio.
 */
export function clipArgs(
  input: string,
  output: string,
  clip: ClipRange,
  avOnly = false,
  tags: FileTags | null = null,
): string[] {
  return [
    ...['-hide_banner', '-nostdin', '-y', '-loglevel', 'error'],
    ...safeInput('file', VIDEO_DEMUXERS),
    // Input options: seek the demuxer (to the keyframe at or before), stop reading at `end`.
    ...['-ss', String(clip.start)],
    ...(clip.end === null ? [] : ['-to', String(clip.end)]),
    ...['-i', input],
    ...(avOnly ? ['-map', '0:v?', '-map', '0:a?'] : ['-map', '0']),
    ...['-c', 'copy', '-map_metadata', '0', ...metadataArgs(tags ?? undefined)],
    ...['-movflags', '+faststart', '-f', 'mp4', output],
  ];
}

/** Cuts the clip; answers a warning for the result when streams had to be left out, else null. */
export async function cutClip(
  ctx: DownloadContext,
  input: string,
  output: string,
  clip: ClipRange,
): Promise<string | null> {
  ctx.log.info({ start: clip.start, end: clip.end }, 'cutting the clip');
  // The clip is a new file: it takes the job's title and source as every output does.
  const tags = jobTags(ctx);
  const cut = (avOnly: boolean) =>
    runTool(ctx.ffmpeg.ffmpeg, clipArgs(input, output, clip, avOnly, tags), { signal: ctx.signal });
  try {
    await cut(false);
    return null;
  } catch (err) {
    if (isGabeError(err, 'CANCELLED')) throw err;
    // A stream MP4 cannot carry (a camera's timecode or metadata track, some subtitle codecs) fails
    // the whole copy: the clip keeps its video and audio rather than failing.
    ctx.log.warn(
      { err: (err as Error).message },
      'the clip with every stream failed; keeping video and audio',
    );
    await cut(true).catch((again: unknown) => {
      if (isGabeError(again, 'CANCELLED')) throw again;
      throw new GabeError('FFMPEG', `could not cut the clip: ${(again as Error).message}`, { cause: again });
    });
    return 'the clip keeps only the video and audio: another stream of the source cannot go into an MP4';
  }
}
