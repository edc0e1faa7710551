/**
 * The segments of a track a job downloads when it asks for a clip or skips ads: the clip window of
 * the playlist's timeline (clip-window.ts) less the spans the skip rules cut out (skip-rules.ts),
 * the same spans for every track so that audio and video lose the same time. Pure.
 */
import type { ClipRange } from '../../jobs/clip-range.js';
import type { MediaPlaylist, Segment } from '../../playlist/model.js';
import { GabeError } from '../../service/errors.js';
import { clipWindow, type Span, segmentSpans } from './clip-window.js';

export interface SegmentChoice {
  /** The playlist with only the segments to download. */
  media: MediaPlaylist;
  /** Timeline seconds where the first kept segment starts. */
  from: number;
  /** Spans removed inside the window (skipped), in order. */
  removed: Span[];
  skipped: { segments: number; seconds: number };
}

/**
 * Keeps the segments in the clip window (all without a clip; `preroll` more before it) whose middle
 * is outside every skip span. A kept segment right after a removed one starts a new discontinuity
 * run: its timestamps jump over the removed time, and runs are merged one after the other.
 */
export function chooseSegments(
  media: MediaPlaylist,
  clip: ClipRange | null,
  skip: readonly Span[],
  preroll = 0,
): SegmentChoice {
  const spans = segmentSpans(media.segments);
  const { first, last } = clip
    ? clipWindow(spans, clip, preroll)
    : { first: 0, last: media.segments.length - 1 };
  const segments: Segment[] = [];
  const removed: Span[] = [];
  let gap = false;
  for (let i = first; i <= last; i++) {
    const s = media.segments[i]!;
    const span = spans[i]!;
    const middle = (span.start + span.end) / 2;
    if (skip.some((k) => middle >= k.start && middle < k.end)) {
      removed.push(span);
      gap = true;
      continue;
    }
    segments.push(gap && !s.discontinuity ? { ...s, discontinuity: true } : s);
    gap = false;
  }
  if (segments.length === 0 && last >= first) {
    throw new GabeError('VALIDATION', 'the skip rules leave no segment to download');
  }
  const seconds = removed.reduce((n, r) => n + (r.end - r.start), 0);
  return {
    media: { ...media, segments },
    from: spans[first]?.start ?? 0,
    removed,
    skipped: { segments: removed.length, seconds },
  };
}
