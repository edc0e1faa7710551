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

export function buildMedia(lines: readonly Line[], opts: BuildOptions): MediaPlaylist {
  const header = readHeader(lines);
  const { base } = opts;
  const segments: Segment[] = [];
  const keysByFormat = new Map<string, Key>();
  // One array per key state, shared by all segments it covers (100k segments, a handful of keys).
  let keys: readonly Key[] = [];
  let map: InitSection | null = null;
  let duration: number | null | undefined;
  let title: string | undefined;
  let range: { length: number; offset: number | null } | null = null;
  let discontinuity = false;
  let gap = false;
  let pdt: string | undefined;
  let discontinuitySequence = header.discontinuitySequence;
  let previous: Segment | undefined;

  const onTag = (tag: TagLine): void => {
    switch (tag.name) {
      case 'EXTINF':
        ({ duration, title } = parseExtinf(tag.value));
        break;
      case 'EXT-X-BYTERANGE':
        range = parseByteRange(trimBlanks(tag.value)) ?? badRange(tag);
        break;
      case 'EXT-X-DISCONTINUITY':
        discontinuity = true;
        break;
      case 'EXT-X-GAP':
        gap = true;
        break;
      case 'EXT-X-PROGRAM-DATE-TIME':
        pdt = trimBlanks(tag.value);
        break;
      case 'EXT-X-KEY': {
        const method = tag.attrs?.['METHOD'];
        if (tag.attrs === null || method === undefined) break;
        // METHOD=NONE clears every key; otherwise a key replaces the one of the same KEYFORMAT, and
        // keys of different KEYFORMATs (FairPlay + Widevine + PlayReady) apply together.
        if (method === 'NONE') keysByFormat.clear();
        else {
          const key = toKey(tag.attrs, method, base);
          keysByFormat.set(key.keyformat, key);
          if (keysByFormat.size > MAX_KEY_FORMATS) {
            throw new GabeError(
              'NOT_A_PLAYLIST',
              `the playlist applies more than ${MAX_KEY_FORMATS} EXT-X-KEY formats (KEYFORMAT) at once`,
            );
          }
        }
        keys = [...keysByFormat.values()];
        break;
      }
      case 'EXT-X-MAP': {
        const uri = tag.attrs?.['URI'];
        if (tag.attrs === null || uri === undefined) break;
        const r =
          tag.attrs['BYTERANGE'] === undefined
            ? null
            : (parseByteRange(tag.attrs['BYTERANGE']) ?? badRange(tag));
        const byterange = r === null ? null : { length: r.length, offset: r.offset ?? 0 };
        if (byterange !== null && !Number.isSafeInteger(byterange.offset + byterange.length)) badRange(tag);
        const resolvedUri = resolveUri(uri, base);
        map = { uri, ...(resolvedUri === undefined ? {} : { resolvedUri }), byterange, keys };
        break;
      }
    }
  };

  for (const line of lines) {
    if (line.kind === 'tag') {
      onTag(line);
      continue;
    }
    if (segments.length >= opts.maxSegments) {
      throw new GabeError('PLAYLIST_TOO_LARGE', `the playlist lists more than ${opts.maxSegments} segments`);
    }
    if (discontinuity) discontinuitySequence++;
    // Optional fields are assigned rather than spread in: object spread costs seconds at 100,000 segments.
    const segment: Writable<Segment> = {
      uri: line.uri,
      duration: duration ?? null,
      msn: header.mediaSequence + header.skippedSegments + segments.length,
      byterange: absoluteRange(range, previous),
      discontinuity,
      discontinuitySequence,
      keys,
      map,
      gap,
    };
    const resolvedUri = resolveUri(line.uri, base);
    if (resolvedUri !== undefined) segment.resolvedUri = resolvedUri;
    if (title !== undefined) segment.title = title;
    if (pdt !== undefined) segment.pdt = pdt;
    segments.push(segment);
    previous = segment;
    duration = undefined;
    title = undefined;
    range = null;
    discontinuity = false;
    gap = false;
    pdt = undefined;
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
