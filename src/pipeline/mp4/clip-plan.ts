/**
 * Pure planning of an MP4 clip: which byte ranges of the source hold the samples that
 * `ffmpeg -ss start -to end -c copy` reads, from the moov's sample index. The clip is cut from a
 * sparse copy of the source (these ranges and the boxes around mdat, holes elsewhere), so the ranges
 * err on the generous side: a byte fetched in vain costs little, a hole ffmpeg reads breaks the clip.
 */
import type { ClipRange } from '../../jobs/clip-range.js';
import type { SampleIndex, TrackSamples } from '../../media/mp4-sample-index.js';

/** A byte range [start, end) of the source. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Seconds of media kept on each side of the clip beyond the keyframe and the end: ffmpeg's mov demuxer
 * seeks every track by its own index (edit lists and B-frame reordering shift times a little), and
 * reads the tracks in file order among samples within 1 s of each other (mov_find_next_sample) until
 * every one has a packet past `end`: 2 s covers that with room for rounding.
 */
export const EDGE_SECONDS = 2;
/**
 * The first seconds of every track are fetched too: ffmpeg decodes a few packets from the start of
 * the file to fill in stream parameters before it seeks.
 */
export const LEAD_SECONDS = 1;
/**
 * The demuxer reads samples, not chunks, but a chunk is the unit a muxer wrote together: the samples
 * around the needed ones are fetched up to their chunk's edge, within this many bytes.
 */
export const CHUNK_WIDEN_BYTES = 32 * 1024;
/** Ranges closer than this are fetched as one: a small gap costs less than one more request. */
export const MERGE_GAP_BYTES = 128 * 1024;

export interface ClipPlan {
  /** Sorted, disjoint, merged ranges of sample data to fetch. */
  ranges: ByteRange[];
  /** Their total size. */
  bytes: number;
  /** The keyframe the clip starts from, seconds on the movie's timeline. */
  keyframe: number;
}

/** Index of the last element of ascending `xs` that is ≤ `v`, or -1. */
function lastAtOrBefore(xs: ArrayLike<number>, v: number): number {
  let lo = 0;
  let hi = xs.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! <= v) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** The track seeks are anchored on: the first video track, else the first track. */
function anchorOf(index: SampleIndex): TrackSamples {
  return index.tracks.find((t) => t.handler === 'vide') ?? index.tracks[0]!;
}

/**
 * The keyframe at or before `start` (by the earlier of its decode and presentation times), then one
 * more back: a safety margin against ffmpeg picking an earlier one than this arithmetic does.
 */
export function keyframeBefore(track: TrackSamples, start: number): number {
  const syncs = track.sync ?? track.pts.map((_, i) => i);
  const when = (s: number) => Math.min(track.pts[s]!, track.dts[s]!);
  let k = -1;
  for (let i = 0; i < syncs.length && when(syncs[i]!) <= start; i++) k = i;
  return syncs[Math.max(0, k - 1)] ?? 0;
}

/** Samples [first, last] of a track (decode order) whose decode time falls in [from, to], padded by one. */
function sampleSpan(track: TrackSamples, from: number, to: number): [number, number] {
  const first = Math.max(0, lastAtOrBefore(track.dts, from));
  const last = Math.min(track.dts.length - 1, lastAtOrBefore(track.dts, to) + 1);
  return [first, last];
}

/**
 * The byte ranges of samples [first, last] of a track, widened to their chunks' edges by at most
 * CHUNK_WIDEN_BYTES each side (an audio-only file can be one chunk).
 */
function chunkRanges(track: TrackSamples, first: number, last: number): ByteRange[] {
  const out: ByteRange[] = [];
  const { chunkOf, offsets, sizes } = track;
  let i = first;
  while (i > 0 && chunkOf[i - 1] === chunkOf[first] && offsets[first]! - offsets[i - 1]! <= CHUNK_WIDEN_BYTES)
    i--;
  let j = last;
  const endOf = (n: number) => offsets[n]! + sizes[n]!;
  while (
    j + 1 < chunkOf.length &&
    chunkOf[j + 1] === chunkOf[last] &&
    endOf(j + 1) - endOf(last) <= CHUNK_WIDEN_BYTES
  )
    j++;
  for (; i <= j; i++) {
    const start = offsets[i]!;
    const end = endOf(i);
    const prev = out.at(-1);
    if (prev && prev.end === start) prev.end = end;
    else out.push({ start, end });
  }
  return out;
}

/** Sorts and merges ranges that touch or lie within `gap` bytes of each other. */
export function mergeRanges(ranges: ByteRange[], gap: number): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const prev = out.at(-1);
    if (prev && r.start <= prev.end + gap) prev.end = Math.max(prev.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** `ranges` (sorted, disjoint) without the bytes of `have` (already fetched, any order). */
export function withoutRanges(ranges: readonly ByteRange[], have: readonly ByteRange[]): ByteRange[] {
  let out = ranges.map((r) => ({ ...r }));
  for (const h of have) {
    out = out.flatMap((r) => {
      if (h.end <= r.start || h.start >= r.end) return [r];
      const left = { start: r.start, end: h.start };
      const right = { start: h.end, end: r.end };
      return [left, right].filter((x) => x.end > x.start);
    });
  }
  return out;
}

/**
 * The ranges a clip needs: every track's samples from EDGE_SECONDS before the anchor track's keyframe
 * (see keyframeBefore) to EDGE_SECONDS after `end` (or the end), out to their chunks, plus each track's
 * first LEAD_SECONDS. Null when a sample lies outside a file of `size` bytes (the moov lies).
 */
export function planClip(index: SampleIndex, clip: ClipRange, size: number): ClipPlan | null {
  const anchor = anchorOf(index);
  const k = keyframeBefore(anchor, clip.start);
  const keyframe = Math.min(anchor.pts[k]!, anchor.dts[k]!);
  const from = keyframe - EDGE_SECONDS;
  const to = (clip.end ?? Number.POSITIVE_INFINITY) + EDGE_SECONDS;
  const wanted: ByteRange[] = [];
  for (const track of index.tracks) {
    const [first, last] = sampleSpan(track, from, to);
    wanted.push(...chunkRanges(track, track === anchor ? Math.min(first, k) : first, last));
    const [, leadLast] = sampleSpan(track, 0, track.dts[0]! + LEAD_SECONDS);
    wanted.push(...chunkRanges(track, 0, leadLast));
  }
  if (wanted.some((r) => r.end > size || r.start < 0)) return null;
  const ranges = mergeRanges(wanted, MERGE_GAP_BYTES);
  return { ranges, bytes: ranges.reduce((n, r) => n + r.end - r.start, 0), keyframe };
}
