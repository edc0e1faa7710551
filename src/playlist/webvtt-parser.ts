/**
 * A lenient parser for one HLS WebVTT segment (pure): the cues, STYLE/REGION blocks and
 * X-TIMESTAMP-MAP (RFC 8216 3.5) of a file. Nothing here throws on bad input: a segment that is not
 * WebVTT has no cues, a bad block is skipped.
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
