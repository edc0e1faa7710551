/**
 * How many segments before a clip's window the download needs, found before it starts: the window's
 * first segment of the main track fetched alone and probed for a keyframe at or before the clip's
 * start, then, if it has none, the segments before it one by one for any keyframe. A request or two
 * more (the probed segments are fetched again with the clip), where finding out after the download
 * (clip-cut.ts, still the final check) would fetch the whole window again.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { ClipRange } from '../../jobs/clip-range.js';
import { SEGMENT_DEMUXERS } from '../../media/ffmpeg/run.js';
import type { MediaPlaylist } from '../../playlist/model.js';
import { ProgressTracker } from '../progress.js';
import { keyframeBy, MAX_PREROLL } from './clip-cut.js';
import { clipWindow, segmentSpans } from './clip-window.js';
import type { KeyCache } from './key-cache.js';
import type { PlaylistSource } from './renditions.js';
import { downloadTrack } from './track-download.js';
import { type KeyOverride, planTrack } from './track-plan.js';

export interface PrerollOptions {
  src: PlaylistSource;
  /** The main track's playlist. */
  media: MediaPlaylist;
  clip: ClipRange;
  keys: KeyCache;
  override: KeyOverride | null;
}

/** Segments to fetch before the clip's window: 0 when its first segment has a keyframe early enough. */
export async function clipPreroll(o: PrerollOptions): Promise<number> {
  const spans = segmentSpans(o.media.segments);
  const { first } = clipWindow(spans, o.clip);
  // Nothing before the window; or segments that decode alone (RFC 8216 4.3.5.1), so each starts with
  // a keyframe: no request to spend (the check after the download still stands).
  if (first === 0 || o.media.independentSegments) return 0;
  for (let back = 0; back <= MAX_PREROLL && first - back >= 0; back++) {
    const i = first - back;
    if (o.media.segments[i]!.gap) continue;
    // The window's first segment needs a keyframe by the start; one before it, any keyframe.
    const at = back === 0 ? o.clip.start - spans[i]!.start : Number.POSITIVE_INFINITY;
    if (await segmentKeyframe(o, i, at)) {
      if (back > 0) o.src.ctx.log.info({ preroll: back }, 'the clip starts in an earlier segment');
      return back;
    }
  }
  return Math.min(first, MAX_PREROLL);
}

/** Fetches segment `i` alone (with its init section, decrypted) and looks for a keyframe by `at`. */
async function segmentKeyframe(o: PrerollOptions, i: number, at: number): Promise<boolean> {
  const { ctx, http, policy } = o.src;
  const file = path.join(ctx.tempDir, 'preroll-probe.track');
  const plan = planTrack({ ...o.media, segments: [o.media.segments[i]!] }, o.override);
  try {
    await downloadTrack({
      ...{ http, policy, keys: o.keys, signal: ctx.signal, log: ctx.log, label: 'video', plan, file },
      concurrency: { initial: 1, max: 1 },
      // Not the job's progress: these bytes are fetched again with the clip.
      progress: new ProgressTracker(),
      reportProgress: () => {},
    });
    return await keyframeBy(ctx.ffmpeg.ffprobe, file, at, ctx.signal, SEGMENT_DEMUXERS);
  } finally {
    await rm(file, { force: true });
    await rm(`${file}.json`, { force: true });
  }
}
