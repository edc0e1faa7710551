/**
 * Clips by time on a media playlist's timeline (the sum of EXTINF from its first segment): which
 * segments cover [start, end), and where a time of that timeline falls in the file made of the
 * segments kept. Pure; job-plan.ts applies it, clip-cut.ts cuts the merged file.
 */
import type { ClipRange } from '../../jobs/clip-range.js';
import type { Segment } from '../../playlist/model.js';
import { GabeError } from '../../service/errors.js';

/** [start, end) seconds on the playlist's timeline. */
export interface Span {
  start: number;
  end: number;
}

/**
 * Each segment's span on the timeline. GAP segments take their time too (they are part of the
 * timeline, only not fetched); an unreadable EXTINF counts as 0.
 */
export function segmentSpans(segments: readonly Segment[]): Span[] {
  let t = 0;
  return segments.map((s) => {
    const d = s.duration !== null && Number.isFinite(s.duration) ? s.duration : 0;
    const span = { start: t, end: t + d };
    t += d;
    return span;
  });
}

/**
 * The indices [first, last] of the segments whose span overlaps [start, end): what a clip needs,
 * `preroll` more before it (the keyframe at or before `start` can lie in an earlier segment).
 * Throws VALIDATION when `start` lies at or beyond the media's end.
 */
export function clipWindow(
  spans: readonly Span[],
  clip: ClipRange,
  preroll = 0,
): { first: number; last: number } {
  const total = spans.at(-1)?.end ?? 0;
  if (clip.start >= total) {
    throw new GabeError(
      'VALIDATION',
      `start (${clip.start} s) is at or beyond the end of the media (${total.toFixed(3)} s)`,
    );
  }
  const end = clip.end ?? Number.POSITIVE_INFINITY;
  let first = spans.findIndex((s) => s.end > clip.start);
  let last = spans.length - 1;
  while (last > first && spans[last]!.start >= end) last--;
  first = Math.max(0, first - preroll);
  return { first, last };
}

/**
 * Seconds from the start of the file made of the kept segments to timeline time `t`: the time from
 * the first kept segment (`from`) less the removed segments' time before `t` (a `t` inside a removed
 * segment lands where it was cut out).
 */
export function fileTime(t: number, from: number, removed: readonly Span[]): number {
  let out = t - from;
  for (const r of removed) {
    if (r.end <= from || r.start >= t) continue;
    out -= Math.min(r.end, t) - Math.max(r.start, from);
  }
  return Math.max(0, out);
}
