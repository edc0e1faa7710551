/**
 * Cutting a clip out of the downloaded source (whole, or the sparse copy of clip-source.ts) with
 * `ffmpeg -ss start -to end -c copy` (clipCopyArgs): every stream, else video and audio alone.
 */
import type { ClipRange } from '../../jobs/clip-range.js';
import { clipCopyArgs } from '../../media/ffmpeg/output-args.js';
import { runTool, VIDEO_DEMUXERS } from '../../media/ffmpeg/run.js';
import { GabeError, isGabeError } from '../../service/errors.js';
import type { DownloadContext } from '../context.js';
import { jobTags } from '../output-extras.js';

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
    runTool(
      ctx.ffmpeg.ffmpeg,
      clipCopyArgs(input, output, clip.start, clip.end, { demuxers: VIDEO_DEMUXERS, avOnly, tags }),
      { signal: ctx.signal },
    );
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
