/**
 * Value grammar shared by both playlist kinds: attribute lists (RFC 8216 4.2), numbers, byte ranges,
 * resolutions and URI resolution. Everything here is lenient on purpose: real playlists put spaces
 * after commas, use `0X` prefixes and leave quotes unbalanced, and one bad attribute must not cost the
 * whole playlist. Every loop is linear in the input (no backtracking regexes on untrusted text).
 */

export type Attributes = Record<string, string>;

function isBlank(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t';
}

/** Trims spaces and tabs only: other Unicode spaces (U+3000 in hls.js' corpus) belong to URIs. */
export function trimBlanks(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isBlank(s[start])) start++;
  while (end > start && isBlank(s[end - 1])) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/**
 * Parses `NAME=VALUE,NAME="quoted, with commas"` into a null-prototype record with quotes removed.
 * `substitute` applies EXT-X-DEFINE variables to each value (RFC 8216bis 4.3: variable references
 * are replaced in quoted-string and hexadecimal values, never in attribute names).
 */
export function parseAttributes(text: string, substitute: (value: string) => string): Attributes {
  const out: Attributes = Object.create(null);
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && (isBlank(text[i]) || text[i] === ',')) i++;
    const eq = text.indexOf('=', i);
    if (eq < 0) break;
    const name = trimBlanks(text.slice(i, eq));
    i = eq + 1;
    while (i < n && isBlank(text[i])) i++;
    let value: string;
    if (text[i] === '"') {
      // An unterminated quote runs to the end of the line rather than failing the whole tag.
      const close = text.indexOf('"', i + 1);
      const end = close < 0 ? n : close;
      value = text.slice(i + 1, end);
      const comma = text.indexOf(',', end);
      i = comma < 0 ? n : comma + 1;
    } else {
      const comma = text.indexOf(',', i);
      const end = comma < 0 ? n : comma;
      value = trimBlanks(text.slice(i, end));
      i = end + 1;
    }
    if (name !== '') out[name] = substitute(value);
  }
  return out;
}

const DECIMAL = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;

/** A decimal integer or float as written (`.360` and `1280000.0` included), else null. */
export function parseNumber(s: string | undefined): number | null {
  if (s === undefined) return null;
  const t = trimBlanks(s);
  if (t.length > 64 || !DECIMAL.test(t)) return null;
  const v = Number(t);
  return Number.isFinite(v) ? v : null;
}

/** `n[@o]` (RFC 8216 4.3.2.2); the offset is null when omitted and is resolved by the caller. */
export function parseByteRange(s: string): { length: number; offset: number | null } | null {
  const at = s.indexOf('@');
  const length = parseNumber(at < 0 ? s : s.slice(0, at));
  const offset = at < 0 ? null : parseNumber(s.slice(at + 1));
  if (length === null || !Number.isSafeInteger(length) || length < 0) return null;
  if (at >= 0 && (offset === null || !Number.isSafeInteger(offset) || offset < 0)) return null;
  return { length, offset };
}

export function parseResolutionAttr(s: string | undefined): { width: number; height: number } | null {
  if (s === undefined) return null;
  const m = /^(\d{1,6})[xX](\d{1,6})$/.exec(trimBlanks(s));
  if (!m) return null;
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** Attribute value as a string, or null when absent (the model never leaves fields undefined). */
export function attr(attrs: Attributes, name: string): string | null {
  return attrs[name] ?? null;
}

/**
 * RFC 3986 resolution through WHATWG URL, the same parser undici will fetch with, so the resolved
 * form is exactly what goes on the wire (spaces and non-ASCII come out percent-encoded). Returns
 * undefined when there is no base or the reference cannot be resolved.
 */
export function resolveUri(uri: string, base: URL | undefined): string | undefined {
  if (base === undefined) return undefined;
  try {
    return new URL(uri, base).href;
  } catch {
    return undefined;
  }
}
