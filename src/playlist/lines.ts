/**
 * Turns playlist text into tag and URI lines: tolerates BOM, CRLF/CR, blank and whitespace-only lines,
 * comments before #EXTM3U and a missing #EXTM3U; rejects what is clearly not a playlist (HTML, JSON,
 * binary, empty) with a message a user can act on; applies EXT-X-DEFINE variables as it goes, because
 * a variable is only defined for the lines after its EXT-X-DEFINE (RFC 8216bis 4.4.2.3).
 */
import { GabeError } from '../service/errors.js';
import { type Attributes, parseAttributes, trimBlanks } from './attributes.js';

export interface TagLine {
  readonly kind: 'tag';
  /** Without the leading `#`, e.g. `EXTINF`, `EXT-X-KEY`. */
  readonly name: string;
  /** Text after the first `:` (empty when there is none). */
  readonly value: string;
  /** Parsed attribute list for tags whose value is one (see ATTRIBUTE_TAGS). */
  readonly attrs: Attributes | null;
}

export interface UriLine {
  readonly kind: 'uri';
  readonly uri: string;
}

export type Line = TagLine | UriLine;

export interface LexResult {
  readonly lines: readonly Line[];
  readonly defines: Readonly<Record<string, string>>;
}

/** Tags whose value is an attribute list; only these get variable substitution inside values. */
const ATTRIBUTE_TAGS = new Set([
  'EXT-X-KEY',
  'EXT-X-MAP',
  'EXT-X-MEDIA',
  'EXT-X-STREAM-INF',
  'EXT-X-I-FRAME-STREAM-INF',
  'EXT-X-SESSION-DATA',
  'EXT-X-SESSION-KEY',
  'EXT-X-DEFINE',
  'EXT-X-SKIP',
  'EXT-X-START',
]);

const VARIABLE_REF = /\{\$([A-Za-z0-9_-]+)\}/g;

function notAPlaylist(what: string): GabeError {
  return new GabeError('NOT_A_PLAYLIST', `the URL returned ${what}, not an HLS playlist`);
}

/**
 * Recognises the usual wrong answers (an error page, an API response, the video itself) to say what
 * they are. Text starting with `#` is left to the lexer unless control characters (NUL above all)
 * say it is binary: a Latin-1 playlist decoded as UTF-8 is full of U+FFFD and is still a playlist.
 */
function sniff(text: string): void {
  const head = text.slice(0, 1024);
  // UTF-16 read as UTF-8: the BOM turns into U+FFFD U+FFFD and every other character is a NUL.
  if (/^[\uFEFF\uFFFD]*(?:[^\0]\0){4}|^[\uFEFF\uFFFD]*(?:\0[^\0]){4}/.test(head.slice(0, 64))) {
    throw notAPlaylist('UTF-16 text (an HLS playlist must be UTF-8)');
  }
  const start = trimBlanks(head.replace(/^[\s\uFEFF]+/, ''));
  if (start === '') throw notAPlaylist('an empty response');
  const startsWithHash = start.startsWith('#');
  let control = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    // RFC 8216 4.1 forbids control characters; U+FFFD only counts before a `#`, since a Latin-1
    // playlist decoded as UTF-8 is full of them and is still a playlist.
    if (c === 0 || (c === 0xfffd && !startsWithHash)) control += 8;
    else if ((c < 0x20 && c !== 9 && c !== 10 && c !== 13) || c === 0x7f) control++;
  }
  if (control >= 8) {
    throw notAPlaylist(startsWithHash ? 'binary data after its first line' : 'binary data (a media file?)');
  }
  if (startsWithHash) return;
  const lower = start.slice(0, 200).toLowerCase();
  if (lower.startsWith('<')) {
    if (lower.includes('<mpd')) throw notAPlaylist('a DASH manifest (MPD)');
    if (lower.startsWith('<?xml') && !lower.includes('<html')) throw notAPlaylist('an XML document');
    throw notAPlaylist('an HTML page');
  }
  if (lower.startsWith('{') || lower.startsWith('[')) throw notAPlaylist('a JSON document');
}

function splitTag(line: string): { name: string; value: string } {
  const colon = line.indexOf(':');
  let end = colon < 0 ? line.length : colon;
  // IPTV lists write `#EXTM3U url-tvg="..."`: the tag name ends at the first blank too.
  for (let i = 1; i < end; i++) {
    if (line[i] === ' ' || line[i] === '\t') {
      end = i;
      break;
    }
  }
  return { name: line.slice(1, end), value: colon < 0 ? '' : line.slice(colon + 1) };
}

export interface LexOptions {
  /** The playlist's URL, for `EXT-X-DEFINE:QUERYPARAM`. */
  readonly base: URL | undefined;
  /** Variables a master playlist defined, for `EXT-X-DEFINE:IMPORT`. */
  readonly imports: Readonly<Record<string, string>> | undefined;
  /**
   * Most characters variable substitution may add to the playlist as a whole. Variables can refer to
   * variables, so a few lines of EXT-X-DEFINE can otherwise grow into gigabytes ("billion laughs").
   */
  readonly maxExpansion: number;
  /**
   * Most URI lines (segments, variants). Media and master builders enforce their own caps too; this
   * one stops a 16 MB playlist of URIs early, before a model of 100,000 entries is built for nothing.
   */
  readonly maxUris: number;
}

export function lex(input: string, opts: LexOptions): LexResult {
  const text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  sniff(text);
  const vars = new Map<string, string>();
  let expanded = 0;
  const expand = (ref: string, name: string): string => {
    const value = vars.get(name);
    if (value === undefined) return ref;
    // Counted before String.replace builds its result, so memory stays bounded by the limit.
    expanded += value.length - ref.length;
    if (expanded > opts.maxExpansion) {
      throw new GabeError(
        'PLAYLIST_TOO_LARGE',
        `EXT-X-DEFINE variables expand the playlist by more than ${opts.maxExpansion} characters`,
      );
    }
    return value;
  };
  const substitute = (value: string): string =>
    value.includes('{$') ? value.replace(VARIABLE_REF, expand) : value;
  const lines: Line[] = [];
  let uris = 0;
  let seenSignificant = false;
  let seenHeader = false;
  let seenPlaylistTag = false;
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = trimBlanks(raw);
    if (line === '') continue;
    if (line.startsWith('#')) {
      // `#` lines that are not `#EXT...` are comments (RFC 8216 4.1), also before #EXTM3U.
      if (!line.startsWith('#EXT')) continue;
      const { name, value } = splitTag(line);
      seenSignificant = true;
      if (name === 'EXTM3U') {
        seenHeader = true;
        continue;
      }
      if (name === 'EXTINF' || name.startsWith('EXT-X-')) seenPlaylistTag = true;
      const attrs = ATTRIBUTE_TAGS.has(name) ? parseAttributes(value, substitute) : null;
      if (name === 'EXT-X-DEFINE' && attrs !== null) define(attrs, vars, opts);
      lines.push({ kind: 'tag', name, value, attrs });
      continue;
    }
    // The first significant line must be a tag: a text file of links is an .m3u, not HLS.
    if (!seenSignificant) throw notAPlaylist('a document that does not start with #EXTM3U');
    if (++uris > opts.maxUris) {
      throw new GabeError(
        'PLAYLIST_TOO_LARGE',
        `the playlist lists more than ${opts.maxUris} segments or variants`,
      );
    }
    lines.push({ kind: 'uri', uri: substitute(line) });
  }
  // Without #EXTM3U we still accept text that is made of HLS tags (some encoders forget the header).
  if (!seenHeader && !seenPlaylistTag) throw notAPlaylist('text without #EXTM3U or any HLS tag');
  return { lines, defines: Object.fromEntries(vars) };
}

function define(attrs: Attributes, vars: Map<string, string>, opts: LexOptions): void {
  const name = attrs['NAME'];
  if (name !== undefined && attrs['VALUE'] !== undefined) {
    vars.set(name, attrs['VALUE']);
    return;
  }
  const imported = attrs['IMPORT'];
  if (imported !== undefined) {
    // Own properties only: IMPORT="constructor" must not find Object.prototype's.
    const value = opts.imports && Object.hasOwn(opts.imports, imported) ? opts.imports[imported] : undefined;
    if (typeof value === 'string') vars.set(imported, value);
    return;
  }
  const param = attrs['QUERYPARAM'];
  if (param !== undefined) {
    const value = opts.base?.searchParams.get(param);
    if (value !== null && value !== undefined) vars.set(param, value);
  }
}
