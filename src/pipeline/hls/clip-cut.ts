/**
 * The exact clip, cut from the file merged of the segments that cover it, as
 * `ffmpeg -ss S -to E -i full.mp4 -c copy` cuts it: from the last keyframe at or before S (the
 * frames up to S stay, for decoding, hidden by an edit list) to E. The window's first segment need not
 * start with a keyframe (open GOPs, segments cut by time): clip-preroll.ts finds how many segments
 * before the window hold the one at or before S.
 */
import path from 'node:path';
import type { ClipRange } from '../../jobs/clip-range.js';
import { type ClipCopyOptions, clipCopyArgs } from '../../media/ffmpeg/output-args.js';
import { runTool, safeInput } from '../../media/ffmpeg/run.js';
import { fileTime } from './clip-window.js';
import type { Selection } from './job-plan.js';

/**
 * A keyframe this close after the start counts as at it. The clip's times are on the EXTINF timeline,
 * where a segment starts with its first packet; when audio leads video in the segment, the keyframe
 * that opens it comes a frame or so later. Without the slack, a start on a segment boundary would
 * fetch the whole window again for the keyframe before it.
 */
const KEYFRAME_SLACK = 0.1;

/**
 * Whether the file's first video stream has a keyframe at most `at` seconds after the file's start
 * (true without video: audio frames all decode alone). `demuxers`: what the file may be read as.
 */
export async function keyframeBy(
  ffprobe: string,
  file: string,
  at: number,
  signal: AbortSignal,
  demuxers = 'mov',
): Promise<boolean> {
  const upTo = Number.isFinite(at) ? ['-read_intervals', `%+${(at + 1).toFixed(3)}`] : [];
  const { stdout } = await runTool(
    ffprobe,
    [
      ...['-v', 'error', ...safeInput('file', demuxers)],
      ...['-select_streams', 'v:0', ...upTo],
      ...['-show_entries', 'format=start_time:packet=pts_time,flags', '-of', 'json', file],
    ],
    { signal },
  );
  const probed = JSON.parse(stdout.toString()) as {
    packets?: { pts_time?: string; flags?: string }[];
    format?: { start_time?: string };
  };
  const packets = probed.packets ?? [];
  if (packets.length === 0) return true;
  const start = Number(probed.format?.start_time ?? 0) || 0;
  return packets.some((p) => p.flags?.startsWith('K') && Number(p.pts_time) - start <= at + KEYFRAME_SLACK);
}

/** Segments before a clip's window that clip-preroll.ts looks through for a keyframe, at most. */
export const MAX_PREROLL = 8;

/**
 * The clip cut out of `input` (the file of the kept segments) into `clip.mp4` beside it: `clip` is on
 * the playlist's timeline, the file starts at `selection.from` and lacks the removed spans. A note
 * when the file holds no keyframe at or before the start (none found within MAX_PREROLL segments
 * before the window): ffmpeg then starts the clip at the first keyframe after it.
 */
export async function clipFile(
  tools: { ffmpeg: string; ffprobe: string },
  o: {
    input: string;
    clip: ClipRange;
    selection: Pick<Selection, 'from' | 'removed'>;
    ctx: { signal: AbortSignal };
    /** Subtitles timed from the clip's start (JobMux.clipSubtitles). */
    subtitles?: ClipCopyOptions['subtitles'];
  },
): Promise<{ file: string; warnings: string[] }> {
  const { clip, selection, input } = o;
  const { signal } = o.ctx;
  const from = fileTime(clip.start, selection.from, selection.removed);
  const to = clip.end === null ? null : fileTime(clip.end, selection.from, selection.removed);
  const early = selection.from === 0 || (await keyframeBy(tools.ffprobe, input, from, signal));
  const file = path.join(path.dirname(input), 'clip.mp4');
  await runTool(tools.ffmpeg, clipCopyArgs(input, file, from, to, { subtitles: o.subtitles }), { signal });
  const late = `no keyframe at or before the clip's start (${clip.start} s) was found; the clip starts at the first one after it`;
  return { file, warnings: early ? [] : [late] };
}
