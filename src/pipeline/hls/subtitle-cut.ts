/**
 * Subtitles of a clip or of a download with skipped segments (pure): which subtitle segments hold
 * cues for the time kept, and each cue moved from the playlist's timeline to the output's, the way the
 * video was cut (clip-window.ts fileTime): cues in removed time go, cues across a cut are shortened.
 */
import type { ClipRange } from '../../jobs/clip-range.js';
import type { Segment } from '../../playlist/model.js';
import type { Cue } from '../../playlist/webvtt-parser.js';
import { fileTime, type Span, segmentSpans } from './clip-window.js';

/** How the output's timeline was made from the playlist's. */
export interface TimelineCut {
  /** Timeline seconds where the first kept segment starts. */
  from: number;
  /** Skipped segments' spans. */
  removed: readonly Span[];
  /** The clip, when the file is cut to one: its time 0 is `clip.start`. */
  clip: ClipRange | null;
}

/**
 * Where the first segment fetched starts on the playlist's timeline: `from`, past any segments removed
 * from the front (chooseSegments counts them from the window's start). The file's time 0 is there.
 */
export function firstKeptTime(cut: TimelineCut): number {
  let t = cut.from;
  for (const r of cut.removed) if (r.start <= t + 1e-6 && r.end > t) t = r.end;
  return t;
}

/** [start, end) of the playlist's timeline the output shows, before removed spans are taken out. */
function shown(cut: TimelineCut): Span {
  return { start: cut.clip?.start ?? cut.from, end: cut.clip?.end ?? Number.POSITIVE_INFINITY };
}

/** Whether all of `span` lies in one removed span. */
const removed = (span: Span, cut: TimelineCut) =>
  cut.removed.some((r) => r.start <= span.start && r.end >= span.end);

/** Whether any of `span` is shown, not removed. */
function showsAny(span: Span, cut: TimelineCut): boolean {
  const window = shown(cut);
  const start = Math.max(span.start, window.start);
  const end = Math.min(span.end, window.end);
  return end > start && !removed({ start, end }, cut);
}

/**
 * The subtitle segments worth fetching, by index: those that overlap the time shown, and the one
 * before each of them. RFC 8216 3.5 repeats a cue in every segment it is shown in, but ffmpeg's
 * segmenter (and others) write it only where it starts, so a cue running into the clip from the
 * segment before would be lost without it. Subtitle segments are a few hundred bytes. `otherClock`:
 * such a segment in skipped time (an ad), or across a discontinuity (`breaks[i]`: segment i starts
 * one) from the one shown, whose timestamps may be on another clock than the video kept.
 */
export function subtitleSegmentsFor(
  spans: readonly Span[],
  cut: TimelineCut,
  breaks: readonly boolean[] = [],
): { index: number; otherClock: boolean }[] {
  const shows = spans.map((s) => showsAny(s, cut));
  return spans.flatMap((span, i) => {
    if (shows[i]) return [{ index: i, otherClock: false }];
    if (!shows[i + 1]) return [];
    return [{ index: i, otherClock: removed(span, cut) || breaks[i + 1] === true }];
  });
}

/**
 * Where each discontinuity run of the main track begins on the playlist's timeline: the start of its
 * first segment downloaded (`pieces` in write order, numbered by run; `media` the whole playlist, whose
 * segments they name by msn). NaN for a run without a segment.
 */
export function runTimes(
  pieces: readonly { kind: string; msn: number; run: number }[],
  media: { segments: readonly Segment[] },
): number[] {
  const spans = segmentSpans(media.segments);
  const startOf = new Map(media.segments.map((s, i) => [s.msn, spans[i]!.start]));
  const times: number[] = [];
  for (const p of pieces) {
    if (p.kind !== 'segment' || times[p.run] !== undefined) continue;
    while (times.length < p.run) times.push(Number.NaN);
    times[p.run] = startOf.get(p.msn) ?? Number.NaN;
  }
  return times;
}

const roundMs = (s: number): number => Math.round(s * 1000) / 1000;

/**
 * Cues on the playlist's timeline (sorted by start) → on the output's: only their part within the
 * time shown, a cue across removed time joined over the cut, and none left in removed time only.
 */
export function cutCues(cues: readonly Cue[], cut: TimelineCut): Cue[] {
  const window = shown(cut);
  const at = (t: number) => fileTime(t, cut.from, cut.removed);
  const zero = at(window.start);
  const out: Cue[] = [];
  for (const c of cues) {
    const start = Math.max(c.start, window.start);
    const end = Math.min(c.end, window.end);
    if (end <= start) continue;
    const moved = { ...c, start: roundMs(at(start) - zero), end: roundMs(at(end) - zero) };
    if (moved.end > moved.start) out.push(moved);
  }
  return out;
}
