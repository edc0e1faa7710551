/**
 * Cutting a clip out of the downloaded source (whole, or the sparse copy of clip-source.ts) with
 * `ffmpeg -ss start -to end -c copy`: a stream copy that starts at the keyframe at or before `start`,
 * every stream and the metadata kept, the moov moved to the front.
 */
import type { ClipRange } from '../../jobs/clip-range.js';
import { runTool, safeInput, VIDEO_DEMUXERS } from '../../media/ffmpeg/run.js';
import { GabeError, isGabeError } from '../../service/errors.js';
import type { DownloadContext } from '../context.js';

/** ffmpeg's arguments for the clip of `input` into the MP4 `output`. */
export function clipArgs(input: string, output: string, clip: ClipRange): string[] {
  return [
    ...['-hide_banner', '-nostdin', '-y', '-loglevel', 'error'],
    ...safeInput('file', VIDEO_DEMUXERS),
    // Input options: seek the demuxer (to the keyframe at or before), stop reading at `end`.
    ...['-ss', String(clip.start)],
    ...(clip.end === null ? [] : ['-to', String(clip.end)]),
    ...['-i', input, '-map', '0', '-c', 'copy', '-map_metadata', '0'],
    ...['-movflags', '+faststart', '-f', 'mp4', output],
  ];
}

export async function cutClip(
  ctx: DownloadContext,
  input: string,
  output: string,
  clip: ClipRange,
): Promise<void> {
  ctx.log.info({ start: clip.start, end: clip.end }, 'cutting the clip');
  await runTool(ctx.ffmpeg.ffmpeg, clipArgs(input, output, clip), { signal: ctx.signal }).catch(
    (err: unknown) => {
      if (isGabeError(err, 'CANCELLED')) throw err;
      throw new GabeError('FFMPEG', `could not cut the clip: ${(err as Error).message}`, { cause: err });
    },
  );
}
