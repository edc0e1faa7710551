/**
 * Runs the shared HLS conformance corpus (../shared/conformance/hls, see its README) through
 * parsePlaylist and compares with each entry's `expect`. Comparison goes through toInfoJson where the
 * field exists there, so what is proven is what `gabe info --json` prints; the model covers the rest.
 *
 * Conventions: a field the corpus omits is compared as its documented default (absent `keys` = [],
 * absent `map`/`byterange`/`title` = null, absent `discontinuity`/`gap` = false), so invented values
 * fail too. `resolved_uri` is compared after WHATWG URL serialisation: we resolve with `new URL()`,
 * which percent-encodes spaces and non-ASCII (what goes on the wire), while the corpus keeps RFC 3986
 * text unescaped; both denote the same resource.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type MasterInfoJson, type MediaInfoJson, toInfoJson } from '../../src/playlist/info.js';
import type { Key, MasterPlaylist, MediaPlaylist, Variant } from '../../src/playlist/model.js';
import { parsePlaylist } from '../../src/playlist/parser.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpusDir = path.resolve(repoRoot, '../shared/conformance/hls');
const corpusMissing = !existsSync(path.join(corpusDir, 'manifest.json'));

// biome-ignore lint/suspicious/noExplicitAny: the manifest is untyped JSON data.
type Json = any;

interface Entry {
  file: string;
  kind: 'master' | 'media';
  base_uri?: string;
  spec_issues?: string[];
  bytes: number;
  sha256: string;
  expect: Json;
}

class Mismatch extends Error {}

function same(field: string, expected: unknown, actual: unknown): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    if (Math.abs(expected - actual) <= 1e-6) return;
  } else if (field.endsWith('resolved_uri') && typeof expected === 'string' && typeof actual === 'string') {
    if (new URL(expected).href === actual) return;
  } else if (JSON.stringify(expected) === JSON.stringify(actual)) {
    return;
  }
  throw new Mismatch(`${field}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** Compares `expect[name] ?? fallback` (or only when present, if fallback is undefined). */
function field(prefix: string, exp: Json, name: string, actual: unknown, fallback?: unknown): void {
  if (name in exp) same(`${prefix}.${name}`, exp[name], actual);
  else if (fallback !== undefined) same(`${prefix}.${name}`, fallback, actual);
}

const VARIANT_JSON_FIELDS = [
  'uri',
  'bandwidth',
  'average_bandwidth',
  'resolution',
  'codecs',
  'frame_rate',
  'audio',
  'video',
  'subtitles',
  'closed_captions',
] as const;

function checkVariants(
  prefix: string,
  expected: Json[],
  json: MasterInfoJson['variants'],
  model: readonly Variant[],
) {
  same(`${prefix}.length`, expected.length, json.length);
  expected.forEach((exp, i) => {
    const p = `${prefix}[${i}]`;
    const got = json[i]!;
    for (const name of VARIANT_JSON_FIELDS) field(p, exp, name, got[name], null);
    field(p, exp, 'resolved_uri', got.resolved_uri);
    // Attributes the JSON does not carry (VIDEO-RANGE, HDCP-LEVEL, NAME, ...) are checked on the model.
    for (const name of Object.keys(exp)) {
      if ((VARIANT_JSON_FIELDS as readonly string[]).includes(name) || name === 'resolved_uri') continue;
      same(`${p}.${name}`, String(exp[name]), model[i]!.attributes[name.toUpperCase().replaceAll('_', '-')]);
    }
  });
}

function checkMaster(e: Entry, p: MasterPlaylist, json: MasterInfoJson): void {
  const x = e.expect;
  same('variant_count', x.variant_count, json.variants.length);
  checkVariants('variants', x.variants, json.variants, p.variants);
  if (x.iframe_variants)
    checkVariants('iframe_variants', x.iframe_variants, json.iframe_variants, p.iframeVariants);
  same('renditions.length', x.renditions.length, json.renditions.length);
  x.renditions.forEach((exp: Json, i: number) => {
    const pre = `renditions[${i}]`;
    const got = json.renditions[i]!;
    const model = p.renditions[i]!;
    for (const name of ['type', 'group_id', 'name', 'language', 'uri', 'default', 'autoselect'] as const) {
      same(`${pre}.${name}`, exp[name], got[name]);
    }
    field(pre, exp, 'forced', got.forced, false);
    field(pre, exp, 'characteristics', got.characteristics, null);
    field(pre, exp, 'channels', got.channels, null);
    field(pre, exp, 'resolved_uri', got.resolved_uri);
    field(pre, exp, 'assoc_language', model.assocLanguage, null);
    field(pre, exp, 'instream_id', model.instreamId, null);
    if ('bandwidth' in exp) same(`${pre}.bandwidth`, String(exp.bandwidth), model.attributes['BANDWIDTH']);
  });
  field('', x, 'version', p.version);
  field('', x, 'independent_segments', p.independentSegments);
}

function checkKeys(prefix: string, expected: Json[], got: readonly Key[], json: Json[]): void {
  same(`${prefix}.length`, expected.length, got.length);
  expected.forEach((exp, i) => {
    const k = got[i]!;
    const p = `${prefix}[${i}]`;
    same(`${p}.method`, exp.method, json[i].method);
    same(`${p}.uri`, exp.uri ?? null, json[i].uri);
    same(`${p}.iv`, exp.iv ?? null, json[i].iv);
    same(`${p}.keyformat`, exp.keyformat ?? 'identity', k.keyformat);
    same(`${p}.keyformatversions`, exp.keyformatversions ?? null, k.keyformatversions);
    same(`${p}.keyid`, exp.keyid ?? null, k.keyid);
    field(p, exp, 'resolved_uri', json[i].resolved_uri);
  });
}

function checkMedia(e: Entry, p: MediaPlaylist, json: MediaInfoJson): void {
  const x = e.expect;
  for (const name of ['target_duration', 'media_sequence', 'discontinuity_sequence', 'endlist'] as const) {
    same(name, x[name], json[name]);
  }
  for (const name of ['playlist_type', 'segment_count', 'total_duration', 'discontinuity_count'] as const) {
    same(name, x[name], json[name]);
  }
  field('', x, 'version', json.version);
  field('', x, 'i_frames_only', json.i_frames_only);
  field('', x, 'independent_segments', p.independentSegments);
  field('', x, 'first_listed_msn', json.segments[0]?.msn);
  if (x.skip) same('skip.skipped_segments', x.skip.skipped_segments, json.skipped_segments);
  const indices = json.segments.flatMap((s, i) => (s.discontinuity ? [i] : []));
  field('', x, 'discontinuity_indices', indices);
  if ('total_duration_known_segments' in x) {
    const known = p.segments.reduce((sum, s) => sum + (s.duration ?? 0), 0);
    same('total_duration_known_segments', x.total_duration_known_segments, known);
  }
  if ('encrypted_segment_count' in x) {
    same(
      'encrypted_segment_count',
      x.encrypted_segment_count,
      p.segments.filter((s) => s.keys.length > 0).length,
    );
  }
  x.segments.forEach((exp: Json, i: number) => {
    const pre = `segments[${i}]`;
    const got = json.segments[i]!;
    const model = p.segments[i]!;
    for (const name of ['uri', 'duration', 'msn'] as const) same(`${pre}.${name}`, exp[name], got[name]);
    field(pre, exp, 'resolved_uri', got.resolved_uri);
    field(pre, exp, 'title', got.title, null);
    field(pre, exp, 'byterange', got.byterange, null);
    field(pre, exp, 'discontinuity', got.discontinuity, false);
    field(pre, exp, 'discontinuity_sequence', got.discontinuity_sequence);
    field(pre, exp, 'pdt', got.pdt, null);
    field(pre, exp, 'gap', got.gap, false);
    checkKeys(`${pre}.keys`, exp.keys ?? [], model.keys, got.keys);
    // `key` in the JSON is the identity key in effect, else the first one.
    const expKeys: Json[] = exp.keys ?? [];
    const expKey = expKeys.find((k) => (k.keyformat ?? 'identity') === 'identity') ?? expKeys[0];
    same(`${pre}.key.method`, expKey?.method ?? null, got.key?.method ?? null);
    if (!exp.map) {
      same(`${pre}.map`, null, got.map);
      return;
    }
    same(`${pre}.map.uri`, exp.map.uri, got.map?.uri);
    field(`${pre}.map`, exp.map, 'byterange', got.map?.byterange, null);
    field(`${pre}.map`, exp.map, 'resolved_uri', got.map?.resolved_uri);
    if (exp.map.keys) checkKeys(`${pre}.map.keys`, exp.map.keys, model.map?.keys ?? [], got.map?.keys ?? []);
  });
}

/** Null when the entry matches, else the first differing field. */
function check(e: Entry): string | null {
  const bytes = readFileSync(path.join(corpusDir, e.file));
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length !== e.bytes || hash !== e.sha256)
    return 'file bytes differ from the manifest (line endings?)';
  // ignoreBOM keeps a BOM in the text: stripping it is the parser's job, and is tested here.
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  try {
    const p = parsePlaylist(text, e.base_uri);
    same('kind', e.kind, p.kind);
    const json = toInfoJson(p, e.base_uri !== undefined);
    if (p.kind === 'master') checkMaster(e, p, json as MasterInfoJson);
    else checkMedia(e, p, json as MediaInfoJson);
    return null;
  } catch (err) {
    if (err instanceof Mismatch) return err.message;
    return `threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
  }
}

const entries: Entry[] = corpusMissing
  ? []
  : JSON.parse(readFileSync(path.join(corpusDir, 'manifest.json'), 'utf8'));
const results = entries.map((e) => ({ entry: e, mismatch: check(e) }));
const skip = corpusMissing ? `conformance corpus not found at ${corpusDir}` : false;

test('every conformance entry without spec_issues matches its expect facts', { skip }, async (t) => {
  for (const { entry, mismatch } of results.filter((r) => !r.entry.spec_issues)) {
    await t.test(entry.file, () => assert.equal(mismatch, null, `${entry.file}: ${mismatch}`));
  }
});

test('at least 95% of all conformance entries match (lenient-parse entries included)', { skip }, (t) => {
  const failed = results.filter((r) => r.mismatch !== null);
  const matched = results.length - failed.length;
  t.diagnostic(`HLS conformance: ${matched}/${results.length} entries match`);
  for (const { entry, mismatch } of failed) {
    t.diagnostic(`mismatch ${entry.file}${entry.spec_issues ? ' (spec_issues)' : ''}: ${mismatch}`);
  }
  assert.ok(matched >= Math.ceil(results.length * 0.95), `only ${matched}/${results.length} entries match`);
});
