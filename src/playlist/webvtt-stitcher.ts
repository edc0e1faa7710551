/**
 * The stitcher of WebVTT subtitle renditions (pure): maps every segment's cues onto the output file's
 * timeline (RFC 8216 3.5, timestamp-map arithmetic on the 33-bit PTS clock), merges the cues repeated
 * across segments and writes one document.
 */
import { type Cue, parseWebVtt } from './webvtt-parser.js';
import { formatWebVtt } from './webvtt-writer.js';

export interface SubtitleSegment {
  readonly text: string;
  /** Seconds: the sum of the EXTINF durations before this segment. */
  readonly start: number;
  readonly duration: number;
  /**
   * Where the video's clock stands for this segment: `pts` (90 kHz) is at `time` on the playlist's
   * timeline. After a discontinuity the clock restarts or jumps (an ad, a stream joined on), so each
   * run of the main track has its own; without one, the options' videoStartPts and originTime.
   */
  readonly anchor?: { readonly pts: number; readonly time: number };
  /**
   * Fetched only for the cues it may carry into the time shown (some packagers write a cue only in the
   * segment where it starts), from skipped time or across a discontinuity: its X-TIMESTAMP-MAP is on
   * a clock no anchor describes (an ad's), so its mapped cues are left out.
   */
  readonly otherClock?: boolean;
}

export interface StitchOptions {
  /**
   * 90 kHz PTS of the output's time 0, or null when unknown. For an ffmpeg `-c copy` remux to MP4
   * that is the earliest first PTS of the streams muxed (often the audio, a few ms before the video).
   */
  readonly videoStartPts: number | null;
  /**
   * Seconds on the playlist's timeline (the segments' `start`) where videoStartPts lies: 0 for the
   * whole playlist, the first kept segment's start for a clip or after skipped segments. Cues come out
   * on the playlist's timeline either way.
   */
  readonly originTime?: number;
  /**
   * How to read segments without X-TIMESTAMP-MAP. 'presentation' (default): cue times are playlist
   * times (segment-relative ones detected and shifted), which is what ffmpeg's segmenter and most
   * hand-made playlists mean. 'mpegts-zero': the RFC 8216 3.5 rule, cue time 0 is PTS 0.
   */
  readonly missingMap?: 'presentation' | 'mpegts-zero';
  /** Seconds within which two equal cues count as one cue repeated across a boundary (default 0.05). */
  readonly mergeTolerance?: number;
  /**
   * Write the segments' STYLE and REGION blocks (each distinct block once). Off by default: ffmpeg
   * 5.1's WebVTT demuxer reads no cue at all from a file with such a block before the cues, so a file
   * meant for ffmpeg (muxing as mov_text) must not have them; browsers and players honour them.
   */
  readonly keepBlocks?: boolean;
}

export interface StitchResult {
  readonly vtt: string;
  readonly cues: readonly Cue[];
  /** The PTS used as time 0 for mapped segments: videoStartPts, else the first map's MPEGTS. */
  readonly originPts: number | null;
  /** How segments without X-TIMESTAMP-MAP were timed ('none' when every segment had one). */
  readonly unmappedTiming: 'none' | 'presentation' | 'segment-relative' | 'mpegts-zero';
  /** Indices of the segments that were not WebVTT. */
  readonly skippedSegments: readonly number[];
  /** The STYLE and REGION blocks written (none without keepBlocks). */
  readonly blocks: readonly string[];
}

const PTS_WRAP = 2 ** 33;

/**
 * `pts - origin` in 90 kHz ticks, taken on the near side of the 33-bit wrap: RFC 8216 3.5 warns that
 * PES timestamps wrap while cue times do not, so a map's MPEGTS may sit just past 2^33 from the origin.
 */
export function ptsDelta(pts: number, origin: number): number {
  const d = (((pts - origin) % PTS_WRAP) + PTS_WRAP) % PTS_WRAP;
  return d > PTS_WRAP / 2 ? d - PTS_WRAP : d;
}

const shift = (c: Cue, by: number): Cue => ({ ...c, start: c.start + by, end: c.end + by });

/** Seconds of [start, end) inside the segment's own window. */
const overlap = (c: Cue, seg: SubtitleSegment, by: number): number =>
  Math.max(0, Math.min(c.end + by, seg.start + seg.duration) - Math.max(c.start + by, seg.start));

/**
 * Without a map, some packagers write cue times relative to the segment (each segment starts near 0),
 * others relative to the presentation. RFC 8216 3.5 says a segment carries the cues shown during its
 * EXTINF window, so take the reading that puts more cue time inside the segments' own windows, over
 * the whole track so one odd segment cannot flip the rest (N_m3u8DL-RE's HlsSubtitleTimeline scores
 * clock readings by this same overlap). Ties stay presentation-relative.
 */
function looksSegmentRelative(segments: readonly { seg: SubtitleSegment; cues: readonly Cue[] }[]): boolean {
  let asWritten = 0;
  let shifted = 0;
  for (const { seg, cues } of segments) {
    for (const c of cues) {
      asWritten += overlap(c, seg, 0);
      shifted += overlap(c, seg, seg.start);
    }
  }
  return shifted > asWritten;
}

const roundMs = (s: number): number => Math.round(s * 1000) / 1000;

/**
 * One cue repeated in the segments it spans (RFC 8216 3.5 requires that) becomes one cue covering the
 * union: same text and settings, times overlapping or within `tolerance`. Input need not be sorted.
 */
export function mergeCues(cues: readonly Cue[], tolerance = 0.05): Cue[] {
  const sorted = [...cues].sort((a, b) => a.start - b.start || a.end - b.end);
  const out: { -readonly [K in keyof Cue]: Cue[K] }[] = [];
  const last = new Map<string, (typeof out)[number]>();
  for (const c of sorted) {
    const key = `${c.settings}\u0000${c.text}`;
    const prev = last.get(key);
    if (prev && c.start <= prev.end + tolerance) {
      prev.end = Math.max(prev.end, c.end);
      prev.id ??= c.id;
      continue;
    }
    const copy = { ...c };
    out.push(copy);
    last.set(key, copy);
  }
  // Identifiers must be unique in a file; packagers often restart them in every segment.
  const counts = new Map<string, number>();
  for (const c of out) if (c.id) counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
  return out.map((c) => (c.id && counts.get(c.id)! > 1 ? { ...c, id: null } : c));
}

/** Joins the segments of one subtitle media playlist into one WebVTT file on the output's timeline. */
export function stitchWebVtt(segments: readonly SubtitleSegment[], options: StitchOptions): StitchResult {
  const docs = segments.map((seg) => ({ seg, doc: parseWebVtt(seg.text) }));
  const skippedSegments = docs.flatMap((d, i) => (d.doc.valid ? [] : [i]));
  const valid = docs.filter((d) => d.doc.valid);
  // Without the video's PTS, hls.js holds subtitle segments back until the main track's initPTS is
  // known ("Missing initPTS for VTT MPEGTS"); a file has no later, so the first map's MPEGTS stands
  // in for it: that segment's cue time LOCAL becomes time 0. Right for the usual one map for all
  // segments (Apple's segmenter) and for per-segment maps whenever the first segment is WebVTT.
  const firstMap = valid.find((d) => d.doc.timestampMap !== null)?.doc.timestampMap ?? null;
  const originPts = options.videoStartPts ?? firstMap?.mpegts ?? null;
  // The stand-in is taken as the playlist's start, as it is for the whole playlist.
  const originTime = options.videoStartPts !== null ? (options.originTime ?? 0) : 0;
  const mapped: Cue[] = [];
  const unmapped: { seg: SubtitleSegment; cues: readonly Cue[] }[] = [];
  for (const { seg, doc } of valid) {
    const map = doc.timestampMap;
    const anchor = seg.anchor ?? (originPts === null ? null : { pts: originPts, time: originTime });
    if (map === null || anchor === null) {
      unmapped.push({ seg, cues: doc.cues });
      continue;
    }
    if (seg.otherClock) continue;
    // RFC 8216 3.5: media time = cue - LOCAL + MPEGTS / 90 kHz; PTS anchor.pts is at anchor.time.
    const offset = anchor.time + ptsDelta(map.mpegts, anchor.pts) / 90_000 - map.local;
    for (const c of doc.cues) mapped.push(shift(c, offset));
  }
  let unmappedTiming: StitchResult['unmappedTiming'] = 'none';
  if (unmapped.length > 0) {
    if (options.missingMap === 'mpegts-zero' && originPts !== null) {
      unmappedTiming = 'mpegts-zero';
      const offset = originTime + ptsDelta(0, originPts) / 90_000;
      for (const { cues } of unmapped) for (const c of cues) mapped.push(shift(c, offset));
    } else {
      const relative = looksSegmentRelative(unmapped);
      unmappedTiming = relative ? 'segment-relative' : 'presentation';
      for (const { seg, cues } of unmapped)
        for (const c of cues) mapped.push(shift(c, relative ? seg.start : 0));
    }
  }
  // hls.js's rule: drop cues that end before 0 on the timeline, clamp the rest to start at 0.
  const onTimeline = mapped
    .map((c) => ({ ...c, start: roundMs(Math.max(0, c.start)), end: roundMs(c.end) }))
    .filter((c) => c.end > c.start);
  const cues = mergeCues(onTimeline, options.mergeTolerance);
  const blocks = options.keepBlocks ? [...new Set(valid.flatMap((d) => d.doc.blocks))] : [];
  return { vtt: formatWebVtt(cues, blocks), cues, originPts, unmappedTiming, skippedSegments, blocks };
}
