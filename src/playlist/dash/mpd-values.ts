/**
 * Reading MPD attribute values (pure): ISO 8601 durations, xs:dateTime, byte ranges, frame rates,
 * DRM scheme names, and the generic XML node access the parser builds on. Every reader returns null
 * for a value it cannot read: a manifest with one odd attribute is still a manifest.
 */
import type { ByteRange } from '../model.js';

/** An element as fast-xml-parser gives it: attributes as `@_name`, children as arrays, text as `#text`. */
export type XmlNode = { readonly [key: string]: unknown };

export function children(node: XmlNode | undefined, name: string): XmlNode[] {
  const value = node?.[name];
  return Array.isArray(value) ? value.filter((v): v is XmlNode => typeof v === 'object' && v !== null) : [];
}

export function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return children(node, name)[0];
}

export function attr(node: XmlNode | undefined, name: string): string | null {
  const value = node?.[`@_${name}`];
  return typeof value === 'string' ? decodeXml(value) : null;
}

export function text(node: XmlNode | undefined): string | null {
  const value = node?.['#text'];
  if (typeof value === 'string') return decodeXml(value).trim();
  return typeof value === 'number' ? String(value) : null;
}

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * The parser runs with entity processing off (no DOCTYPE entity can expand), so the five predefined
 * entities and character references, which a BaseURL with a query string routinely holds, are
 * decoded here. Anything else stays as written.
 */
export function decodeXml(value: string): string {
  if (!value.includes('&')) return value;
  return value.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] !== '#') return PREDEFINED[ref] ?? whole;
    const code = ref[1] === 'x' || ref[1] === 'X' ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

const DURATION =
  /^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d*)?|\.\d+)S)?)?$/;

/**
 * xs:duration in seconds. Years and months have no fixed length; 365 and 30 days are what dash.js
 * and Shaka use, and no real MPD gives a duration in months anyway. Negative durations are null.
 */
export function parseDuration(value: string | null): number | null {
  if (value === null) return null;
  const m = DURATION.exec(value.trim());
  if (!m || value.trim() === 'P' || value.trim().endsWith('T')) return null;
  const [, y, mo, d, h, mi, s] = m.map((part) => (part === undefined ? 0 : Number(part)));
  const total = y! * 31_536_000 + mo! * 2_592_000 + d! * 86_400 + h! * 3_600 + mi! * 60 + s!;
  return Number.isFinite(total) ? total : null;
}

/** xs:dateTime in epoch ms; a time without a zone is UTC (what DASH players assume). */
export function parseDateTime(value: string | null): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?$/.test(v)) return null;
  const ms = Date.parse(/(Z|[+-]\d\d:\d\d)$/.test(v) ? v : `${v}Z`);
  return Number.isFinite(ms) ? ms : null;
}

/** A non-negative integer or decimal attribute; anything else is null. */
export function parseNumber(value: string | null): number | null {
  if (value === null || !/^\s*\d+(\.\d+)?\s*$/.test(value)) return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

/** @frameRate: `25`, `29.97` or `30000/1001`. */
export function parseFrameRate(value: string | null): number | null {
  if (value === null) return null;
  const [num, den] = value.split('/');
  const n = parseNumber(num ?? null);
  if (den === undefined) return n;
  const d = parseNumber(den);
  return n !== null && d ? n / d : null;
}

/** `first-last` (inclusive, as in HTTP Range) into an offset and a length. */
export function parseByteRange(value: string | null): ByteRange | null {
  const m = value === null ? null : /^\s*(\d+)-(\d+)\s*$/.exec(value);
  if (!m) return null;
  const first = Number(m[1]);
  const last = Number(m[2]);
  return Number.isSafeInteger(last) && last >= first ? { offset: first, length: last - first + 1 } : null;
}

const DRM_SYSTEMS: Record<string, string> = {
  'urn:mpeg:dash:mp4protection:2011': 'cenc',
  'urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed': 'widevine',
  'urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95': 'playready',
  'urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e': 'clearkey',
  'urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b': 'clearkey',
};

/** The short name of a ContentProtection@schemeIdUri, else the URI lower-cased. */
export function drmSystemName(schemeIdUri: string | null): string {
  const uri = (schemeIdUri ?? '').trim().toLowerCase();
  return DRM_SYSTEMS[uri] ?? uri;
}

/** Resolves `ref` against `base`; an unparsable reference keeps the base (the manifest stays usable). */
export function resolveUrl(ref: string | null, base: string): string {
  if (ref === null) return base;
  try {
    return new URL(ref, base).href;
  } catch {
    return base;
  }
}
