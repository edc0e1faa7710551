/**
 * WebVTT subtitle renditions (pure): a lenient parser for one HLS WebVTT segment, and the stitcher that
 * maps every segment's cues onto the output file's timeline (RFC 8216 3.5) and writes one document.
 * Nothing here throws on bad input: a segment that is not WebVTT has no cues, a bad block is skipped.
 */

export interface Cue {
  /** The cue identifier as written, or null. */
  readonly id: string | null;
  /** Seconds. */
  readonly start: number;
  readonly end: number;
  /** Cue settings as written after the end time, whitespace collapsed ('' when none). */
  readonly settings: string;
  /** Payload lines joined with '\n'; tags and entities kept as written. */
  readonly text: string;
}

/** X-TIMESTAMP-MAP: cue time `local` (seconds) is MPEG-2 TS PTS `mpegts` (90 kHz). */
export interface TimestampMap {
  readonly mpegts: number;
  readonly local: number;
}

export interface WebVttDocument {
  /** False when the text has no `WEBVTT` signature (empty, HTML, ...): then it has nothing else. */
  readonly valid: boolean;
  readonly timestampMap: TimestampMap | null;
  /** STYLE and REGION blocks met before the first cue, as written. */
  readonly blocks: readonly string[];
  readonly cues: readonly Cue[];
}

const INVALID: WebVttDocument = { valid: false, timestampMap: null, blocks: [], cues: [] };

// WebVTT timestamps are `hh:mm:ss.mmm` or `mm:ss.mmm`; hours may have more than two digits. Leniently:
// one-digit fields, any number of fraction digits, a missing fraction, and SRT's comma.
const TIMESTAMP = /^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d+))?$/;

/** Seconds, or null when `s` is not a timestamp. */
export function parseVttTime(s: string): number | null {
  const m = TIMESTAMP.exec(s.trim());
  if (!m) return null;
  const [, h, min, sec, frac] = m;
  if (Number(min) > 59 || Number(sec) > 59) return null;
  return Number(h ?? 0) * 3600 + Number(min) * 60 + Number(sec) + (frac ? Number(`0.${frac}`) : 0);
}

/** `hh:mm:ss.mmm`, rounded to the millisecond; negative times become 0. */
export function formatVttTime(seconds: number): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
}

/**
 * `X-TIMESTAMP-MAP=MPEGTS:n,LOCAL:t` (RFC 8216 3.5), fields in either order. A missing field is 0, as
 * hls.js assumes; a field that is present but malformed voids the whole map.
 */
function parseTimestampMap(value: string): TimestampMap | null {
  let mpegts = 0;
  let local = 0;
  let seen = false;
  for (const field of value.split(',')) {
    const colon = field.indexOf(':');
    if (colon < 0) continue;
    const key = field.slice(0, colon).trim().toUpperCase();
    const v = field.slice(colon + 1).trim();
    if (key === 'MPEGTS') {
      if (!/^\d+$/.test(v)) return null;
      mpegts = Number(v);
    } else if (key === 'LOCAL') {
      const t = parseVttTime(v);
      if (t === null) return null;
      local = t;
    } else continue;
    seen = true;
  }
  return seen ? { mpegts, local } : null;
}

// Some origins write the map on the signature line (`WEBVTT X-TIMESTAMP-MAP=...`, ExoPlayer #7462):
// the text after `WEBVTT ` is free-form, so look for it anywhere in a header line.
const MAP_IN_LINE = /X-TIMESTAMP-MAP\s*=\s*([^\s,]+(?:\s*,\s*[^\s,]+)*)/;

const TIMING = /^\s*([\d:.,]+)\s*-->\s*([\d:.,]+)(.*)$/;

function toCue(block: readonly string[]): Cue | null {
  const at = block[0]?.includes('-->') ? 0 : block[1]?.includes('-->') ? 1 : -1;
  if (at < 0) return null; // neither an identifier + timing nor a timing line: garbage
  const m = TIMING.exec(block[at]!);
  if (!m) return null;
  const start = parseVttTime(m[1]!);
  const end = parseVttTime(m[2]!);
  // The syntax requires end > start; a cue that never shows is worth nothing in the output either.
  if (start === null || end === null || end <= start) return null;
  const text = block
    .slice(at + 1)
    .map((l) => l.trimEnd())
    .join('\n')
    .trim();
  if (text === '') return null;
  const id = at === 1 ? block[0]!.trim() || null : null;
  return { id, start, end, settings: m[3]!.trim().split(/\s+/).join(' '), text };
}

/** Parses one WebVTT file leniently (BOM, CRLF/CR, missing blank line after the header, garbage). */
export function parseWebVtt(text: string): WebVttDocument {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  let i = 0;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  const signature = lines[i] ?? '';
  if (!/^WEBVTT(?:$|[ \t])/.test(signature)) return INVALID;
  let timestampMap: TimestampMap | null = null;
  const readMap = (line: string) => {
    const m = MAP_IN_LINE.exec(line);
    if (m && timestampMap === null) timestampMap = parseTimestampMap(m[1]!);
  };
  readMap(signature);
  // Header metadata runs to the first blank line. A timing line there means the packager left the
  // blank line out; strict parsers lose that cue, we start the body instead.
  for (i++; i < lines.length && lines[i]!.trim() !== '' && !lines[i]!.includes('-->'); i++)
    readMap(lines[i]!);

  const blocks: string[] = [];
  const cues: Cue[] = [];
  let block: string[] = [];
  const flush = () => {
    const first = block[0]?.trim() ?? '';
    if (block.length === 0 || /^NOTE(?:$|[ \t])/.test(first)) {
      // NOTE blocks are comments
    } else if (cues.length === 0 && /^X-TIMESTAMP-MAP/.test(first) && block.length === 1) {
      readMap(first); // some packagers put a blank line between WEBVTT and the map
    } else if (/^(?:STYLE|REGION)$/.test(first) && !block.some((l) => l.includes('-->'))) {
      // Only allowed before the first cue (WebVTT 4.1); later ones are ignored, as browsers do.
      if (cues.length === 0) blocks.push(block.map((l) => l.trimEnd()).join('\n'));
    } else {
      const cue = toCue(block);
      if (cue) cues.push(cue);
    }
    block = [];
  };
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (line.includes('-->')) {
      const hasTiming = block.slice(0, 2).some((l) => l.includes('-->'));
      // An arrow inside a payload ends that cue and starts the next (WebVTT parser, "cue text"); one
      // right under a NOTE/STYLE/REGION block means its blank line is missing.
      if (hasTiming || /^(?:NOTE(?:$|[ \t])|STYLE$|REGION$)/.test(block[0]?.trim() ?? '')) flush();
      // Lines before the identifier are garbage: keep only the line right above the timing.
      else if (block.length >= 2) block = block.slice(-1);
    }
    block.push(line);
  }
  flush();
  return { valid: true, timestampMap, blocks, cues };
}

/** One WebVTT document: the signature, the blocks (STYLE/REGION), then the cues. */
export function formatWebVtt(cues: readonly Cue[], blocks: readonly string[] = []): string {
  const out = ['WEBVTT', ''];
  for (const b of blocks) out.push(b, '');
  for (const c of cues) {
    // A blank line would end the cue early and `-->` would start a new one: neither may be in a payload.
    const payload = c.text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.replaceAll('-->', '--&gt;'));
    if (payload.length === 0) continue;
    if (c.id && !c.id.includes('-->')) out.push(c.id);
    out.push(`${formatVttTime(c.start)} --> ${formatVttTime(c.end)}${c.settings ? ` ${c.settings}` : ''}`);
    out.push(...payload, '');
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Stitching

export interface SubtitleSegment {
  readonly text: string;
  /** Seconds: the sum of the EXTINF durations before this segment. */
  readonly start: number;
  readonly duration: number;
}

export interface StitchOptions {
  /**
   * 90 kHz PTS of the output's time 0, or null when unknown. For an ffmpeg `-c copy` remux to MP4
   * that is the earliest first PTS of the streams muxed (often the audio, a few ms before the video).
   */
  readonly videoStartPts: number | null;
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
  const mapped: Cue[] = [];
  const unmapped: { seg: SubtitleSegment; cues: readonly Cue[] }[] = [];
  for (const { seg, doc } of valid) {
    const map = doc.timestampMap;
    if (map === null || originPts === null) {
      unmapped.push({ seg, cues: doc.cues });
      continue;
    }
    // RFC 8216 3.5: media time = cue - LOCAL + MPEGTS / 90 kHz; the output starts at originPts.
    const offset = ptsDelta(map.mpegts, originPts) / 90_000 - map.local;
    for (const c of doc.cues) mapped.push(shift(c, offset));
  }
  let unmappedTiming: StitchResult['unmappedTiming'] = 'none';
  if (unmapped.length > 0) {
    if (options.missingMap === 'mpegts-zero' && originPts !== null) {
      unmappedTiming = 'mpegts-zero';
      const offset = ptsDelta(0, originPts) / 90_000;
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
  return { vtt: formatWebVtt(cues, blocks), cues, originPts, unmappedTiming, skippedSegments };
}
