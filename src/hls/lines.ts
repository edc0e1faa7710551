/**
 * Turns playlist text into tag and URI lines: tolerates BOM, CRLF/CR, blank and whitespace-only lines,
 * comments before #EXTM3U and a missing #EXTM3U; rejects what is clearly not a playlist (HTML, JSON,
 * binary, empty) with a message a user can act on; applies EXT-X-DEFINE variables as it goes, because
 * a variable is only defined for the lines after its EXT-X-DEFINE (RFC 8216bis 4.4.2.3).
 */
import { GabeError } from '../errors.js';
import { type Attributes, parseAttributes, trimBlanks } from './values.js';

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
 * they are. Text starting with `#` is left to the lexer: a Latin-1 playlist decoded as UTF-8 is full
 * of U+FFFD and is still a playlist.
 */
function sniff(text: string): void {
  const head = text.slice(0, 1024);
  const start = trimBlanks(head.replace(/^[\s\uFEFF]+/, ''));
  if (start === '') throw notAPlaylist('an empty response');
  if (start.startsWith('#')) return;
  let control = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (c === 0 || c === 0xfffd) control += 8;
    else if (c < 0x20 && c !== 9 && c !== 10 && c !== 13) control++;
  }
  if (control >= 8) throw notAPlaylist('binary data (a media file?)');
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
}

export function lex(input: string, opts: LexOptions): LexResult {
  const text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  sniff(text);
  const vars = new Map<string, string>();
  const substitute = (value: string): string =>
    value.includes('{$') ? value.replace(VARIABLE_REF, (ref, name: string) => vars.get(name) ?? ref) : value;
  const lines: Line[] = [];
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
    const value = opts.imports?.[imported];
    if (value !== undefined) vars.set(imported, value);
    return;
  }
  const param = attrs['QUERYPARAM'];
  if (param !== undefined) {
    const value = opts.base?.searchParams.get(param);
    if (value !== null && value !== undefined) vars.set(param, value);
  }
}
