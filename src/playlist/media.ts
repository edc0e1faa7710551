/**
 * Media playlist builder (RFC 8216 4.3.2-4.3.3). Media segment tags accumulate until the URI line that
 * closes the segment, so a tag between EXTINF and the URI (EXT-X-KEY, EXT-X-MAP, PDT: all seen in the
 * wild, see hls.js issue #425) still applies to that segment. Tags left over after the last URI line
 * (a trailing EXTINF, LL-HLS parts of an in-progress segment) describe no complete segment and are
 * dropped.
 */
import { GabeError } from '../service/errors.js';
import { attr, parseByteRange, parseNumber, resolveUri, trimBlanks } from './attributes.js';
import type { Line, TagLine } from './lines.js';
import type { ByteRange, InitSection, Key, MediaPlaylist, PlaylistType, Segment } from './model.js';

/**
 * Most KEYFORMATs in effect at once. Real streams use one to four (identity, FairPlay, Widevine,
 * PlayReady); without a cap, a playlist of distinct KEYFORMATs costs quadratic time and memory
 * (every key tag copies the set in effect).
 */
export const MAX_KEY_FORMATS = 32;

type Writable<T> = { -readonly [K in keyof T]: T[K] };

export interface BuildOptions {
  readonly base: URL | undefined;
  readonly maxSegments: number;
}

interface Header {
  version: number | null;
  targetDuration: number | null;
  mediaSequence: number;
  discontinuitySequence: number;
  skippedSegments: number;
  endlist: boolean;
  playlistType: PlaylistType | null;
  iFramesOnly: boolean;
  independentSegments: boolean;
}

/**
 * Playlist tags may legally appear anywhere (EXT-X-ENDLIST "MAY occur anywhere", and real playlists
 * put EXT-X-VERSION after EXT-X-SKIP or DISCONTINUITY-SEQUENCE after the first segment), so they are
 * read in a first pass and apply to every segment, as hls.js does.
 */
function readHeader(lines: readonly Line[]): Header {
  const h: Header = {
    version: null,
    targetDuration: null,
    mediaSequence: 0,
    discontinuitySequence: 0,
    skippedSegments: 0,
    endlist: false,
    playlistType: null,
    iFramesOnly: false,
    independentSegments: false,
  };
  for (const line of lines) {
    if (line.kind !== 'tag') continue;
    switch (line.name) {
      case 'EXT-X-VERSION':
        h.version = parseNumber(line.value);
        break;
      case 'EXT-X-TARGETDURATION':
        h.targetDuration = parseNumber(line.value);
        break;
      case 'EXT-X-MEDIA-SEQUENCE':
        h.mediaSequence = integerOr(line.value, 0);
        break;
      case 'EXT-X-DISCONTINUITY-SEQUENCE':
        h.discontinuitySequence = integerOr(line.value, 0);
        break;
      case 'EXT-X-SKIP':
        h.skippedSegments = integerOr(line.attrs?.['SKIPPED-SEGMENTS'], 0);
        break;
      case 'EXT-X-ENDLIST':
        h.endlist = true;
        break;
      case 'EXT-X-PLAYLIST-TYPE': {
        const t = trimBlanks(line.value).toUpperCase();
        h.playlistType = t === 'VOD' || t === 'EVENT' ? t : null;
        break;
      }
      case 'EXT-X-I-FRAMES-ONLY':
        h.iFramesOnly = true;
        break;
      case 'EXT-X-INDEPENDENT-SEGMENTS':
        h.independentSegments = true;
        break;
    }
  }
  return h;
}

function integerOr(s: string | undefined, fallback: number): number {
  const v = parseNumber(s);
  return v !== null && Number.isSafeInteger(v) ? v : fallback;
}

/**
 * `#EXTINF:<duration>,[<title>]`. Lenient about a missing comma and IPTV attributes after the number
 * (`-1 tvg-id="x",Name`). A negative or unreadable duration becomes null ("unknown"): the M3U
 * convention of -1 means exactly that, and a negative number would corrupt totals and progress.
 */
function parseExtinf(value: string): { duration: number | null; title: string | undefined } {
  const comma = value.indexOf(',');
  const head = comma < 0 ? value : value.slice(0, comma);
  const title = comma < 0 ? undefined : value.slice(comma + 1);
  const m = /^[ \t]*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)/.exec(head);
  const n = m ? Number(m[1]) : Number.NaN;
  return {
    duration: Number.isFinite(n) && n >= 0 ? n : null,
    title: title !== undefined && trimBlanks(title) !== '' ? title : undefined,
  };
}

/**
 * A byte range we cannot read is fatal rather than ignored: ignoring it would fetch the whole resource
 * for every segment and silently produce a garbled file.
 */
function badRange(tag: TagLine): never {
  throw new GabeError('NOT_A_PLAYLIST', `invalid byte range in #${tag.name}:${tag.value.slice(0, 80)}`);
}

/**
 * The media segment tags read since the last URI line, which that line closes into a segment, and the
 * key and map state, which carries on to the segments after it.
 */
class SegmentTags {
  duration: number | null | undefined;
  title: string | undefined;
  range: { length: number; offset: number | null } | null = null;
  discontinuity = false;
  gap = false;
  pdt: string | undefined;
  // One array per key state, shared by all segments it covers (100k segments, a handful of keys).
  keys: readonly Key[] = [];
  map: InitSection | null = null;
  private readonly keysByFormat = new Map<string, Key>();

  constructor(private readonly base: URL | undefined) {}

  read(tag: TagLine): void {
    switch (tag.name) {
      case 'EXTINF':
        ({ duration: this.duration, title: this.title } = parseExtinf(tag.value));
        break;
      case 'EXT-X-BYTERANGE':
        this.range = parseByteRange(trimBlanks(tag.value)) ?? badRange(tag);
        break;
      case 'EXT-X-DISCONTINUITY':
        this.discontinuity = true;
        break;
      case 'EXT-X-GAP':
        this.gap = true;
        break;
      case 'EXT-X-PROGRAM-DATE-TIME':
        this.pdt = trimBlanks(tag.value);
        break;
      case 'EXT-X-KEY':
        this.readKey(tag);
        break;
      case 'EXT-X-MAP':
        this.readMap(tag);
        break;
    }
  }

  /** The tags that apply to one segment only are used up by its URI line. */
  closeSegment(): void {
    this.duration = undefined;
    this.title = undefined;
    this.range = null;
    this.discontinuity = false;
    this.gap = false;
    this.pdt = undefined;
  }

  private readKey(tag: TagLine): void {
    const method = tag.attrs?.['METHOD'];
    if (tag.attrs === null || method === undefined) return;
    // METHOD=NONE clears every key; otherwise a key replaces the one of the same KEYFORMAT, and
    // keys of different KEYFORMATs (FairPlay + Widevine + PlayReady) apply together.
    if (method === 'NONE') this.keysByFormat.clear();
    else {
      const key = toKey(tag.attrs, method, this.base);
      this.keysByFormat.set(key.keyformat, key);
      if (this.keysByFormat.size > MAX_KEY_FORMATS) {
        throw new GabeError(
          'NOT_A_PLAYLIST',
          `the playlist applies more than ${MAX_KEY_FORMATS} EXT-X-KEY formats (KEYFORMAT) at once`,
        );
      }
    }
    this.keys = [...this.keysByFormat.values()];
  }

  private readMap(tag: TagLine): void {
    const uri = tag.attrs?.['URI'];
    if (tag.attrs === null || uri === undefined) return;
    const r =
      tag.attrs['BYTERANGE'] === undefined ? null : (parseByteRange(tag.attrs['BYTERANGE']) ?? badRange(tag));
    const byterange = r === null ? null : { length: r.length, offset: r.offset ?? 0 };
    if (byterange !== null && !Number.isSafeInteger(byterange.offset + byterange.length)) badRange(tag);
    const resolvedUri = resolveUri(uri, this.base);
    this.map = { uri, ...(resolvedUri === undefined ? {} : { resolvedUri }), byterange, keys: this.keys };
  }
}

/** The segment a URI line closes, from the tags before it. */
function toSegment(
  uri: string,
  tags: SegmentTags,
  msn: number,
  discontinuitySequence: number,
  previous: Segment | undefined,
  base: URL | undefined,
): Segment {
  // Optional fields are assigned rather than spread in: object spread costs seconds at 100,000 segments.
  const segment: Writable<Segment> = {
    uri,
    duration: tags.duration ?? null,
    msn,
    byterange: absoluteRange(tags.range, previous),
    discontinuity: tags.discontinuity,
    discontinuitySequence,
    keys: tags.keys,
    map: tags.map,
    gap: tags.gap,
  };
  const resolvedUri = resolveUri(uri, base);
  if (resolvedUri !== undefined) segment.resolvedUri = resolvedUri;
  if (tags.title !== undefined) segment.title = tags.title;
  if (tags.pdt !== undefined) segment.pdt = tags.pdt;
  return segment;
}

export function buildMedia(lines: readonly Line[], opts: BuildOptions): MediaPlaylist {
  const header = readHeader(lines);
  const { base } = opts;
  const segments: Segment[] = [];
  const tags = new SegmentTags(base);
  let discontinuitySequence = header.discontinuitySequence;
  let previous: Segment | undefined;
  for (const line of lines) {
    if (line.kind === 'tag') {
      tags.read(line);
      continue;
    }
    if (segments.length >= opts.maxSegments) {
      throw new GabeError('PLAYLIST_TOO_LARGE', `the playlist lists more than ${opts.maxSegments} segments`);
    }
    if (tags.discontinuity) discontinuitySequence++;
    const msn = header.mediaSequence + header.skippedSegments + segments.length;
    previous = toSegment(line.uri, tags, msn, discontinuitySequence, previous, base);
    segments.push(previous);
    tags.closeSegment();
  }
  return { kind: 'media', ...(base === undefined ? {} : { baseUrl: base.href }), ...header, segments };
}

/**
 * RFC 8216 4.3.2.2: without `@o` the sub-range starts right after the previous segment's sub-range.
 * The RFC requires that segment to be a sub-range of the same resource; when a playlist breaks that
 * rule we still continue from the previous segment, as hls.js and videojs do, since players agree on it.
 */
function absoluteRange(
  range: { length: number; offset: number | null } | null,
  previous: Segment | undefined,
): ByteRange | null {
  if (range === null) return null;
  const prev = previous?.byterange;
  const offset = range.offset ?? (prev ? prev.offset + prev.length : 0);
  // Offsets add up over segments: past 2^53 they stop being exact, and no file is that large.
  if (!Number.isSafeInteger(offset + range.length)) {
    throw new GabeError(
      'NOT_A_PLAYLIST',
      `invalid byte range: ${range.length}@${offset} ends beyond ${Number.MAX_SAFE_INTEGER} bytes`,
    );
  }
  return { length: range.length, offset };
}

export function toKey(attrs: Record<string, string>, method: string, base: URL | undefined): Key {
  const uri = attr(attrs, 'URI');
  const resolvedUri = uri === null ? undefined : resolveUri(uri, base);
  return {
    method,
    uri,
    ...(resolvedUri === undefined ? {} : { resolvedUri }),
    iv: attr(attrs, 'IV'),
    keyformat: attrs['KEYFORMAT'] ?? 'identity',
    keyformatversions: attr(attrs, 'KEYFORMATVERSIONS'),
    keyid: attr(attrs, 'KEYID'),
  };
}
