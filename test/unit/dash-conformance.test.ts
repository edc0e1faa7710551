/**
 * Runs the shared DASH conformance corpus (../shared/conformance/dash, see its README) through
 * parseMpd and representationSegments and compares every fact of each entry's `expect`. One subtest
 * per file; every fact must match.
 *
 * Conventions: a list the corpus omits (`roles`, `labels`) is compared as empty, `trick_mode` as false
 * and `content_protection` as absent, so invented values fail too; scalar attributes are compared only
 * when listed (the corpus lists them only when present), and then the model's value must be exactly it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AdaptationSet, Mpd, Period, Representation } from '../../src/playlist/dash/mpd-model.js';
import { parseMpd } from '../../src/playlist/dash/mpd-parser.js';
import { representationSegments } from '../../src/playlist/dash/mpd-segments.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpusDir = path.resolve(repoRoot, '../shared/conformance/dash');
const corpusMissing = !existsSync(path.join(corpusDir, 'manifest.json'));

// biome-ignore lint/suspicious/noExplicitAny: the manifest is untyped JSON data.
type Json = any;

interface Entry {
  file: string;
  bytes: number;
  sha256: string;
  expect: Json;
}

/** A made-up origin: the corpus facts do not depend on it, the URLs only need a base. */
const BASE = 'https://cdn.example.com/dash/manifest.mpd';

function same(field: string, expected: unknown, actual: unknown): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    assert.ok(Math.abs(expected - actual) <= 1e-6, `${field}: expected ${expected}, got ${actual}`);
    return;
  }
  assert.deepEqual(
    actual,
    expected,
    `${field}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
  );
}

/** Compares `exp[name]` when listed, else `fallback` when given. */
function field(prefix: string, exp: Json, name: string, actual: unknown, fallback?: unknown): void {
  if (name in exp) same(`${prefix}.${name}`, exp[name], actual);
  else if (fallback !== undefined) same(`${prefix}.${name}`, fallback, actual);
}

function segmentCount(mpd: Mpd, period: Period, rep: Representation): number | null {
  const segs = representationSegments(mpd, period, rep);
  return segs.kind === 'segments' ? segs.segments.length : null;
}

function checkRepresentation(p: string, exp: Json, mpd: Mpd, period: Period, rep: Representation): void {
  same(`${p}.id`, exp.id ?? null, rep.id);
  for (const [name, value] of [
    ['bandwidth', rep.bandwidth],
    ['width', rep.width],
    ['height', rep.height],
    ['codecs', rep.codecs],
    ['mime_type', rep.mimeType],
  ] as const) {
    field(p, exp, name, value);
  }
  same(`${p}.addressing`, exp.addressing, rep.addressing);
  if ('segment_count' in exp) same(`${p}.segment_count`, exp.segment_count, segmentCount(mpd, period, rep));
}

function checkSet(p: string, exp: Json, mpd: Mpd, period: Period, set: AdaptationSet): void {
  field(p, exp, 'id', set.id);
  field(p, exp, 'content_type', set.contentType);
  field(p, exp, 'mime_type', set.mimeType);
  field(p, exp, 'lang', set.lang);
  field(p, exp, 'roles', set.roles, []);
  field(p, exp, 'labels', set.labels, []);
  field(p, exp, 'trick_mode', set.trickMode, false);
  same(`${p}.content_protection`, exp.content_protection ?? false, set.contentProtection.length > 0);
  same(`${p}.representation_count`, exp.representation_count, set.representations.length);
  exp.representations.forEach((r: Json, i: number) => {
    checkRepresentation(`${p}.representations[${i}]`, r, mpd, period, set.representations[i]!);
  });
}

function checkPeriod(p: string, exp: Json, mpd: Mpd, period: Period): void {
  field(p, exp, 'id', period.id);
  field(p, exp, 'start_s', period.start);
  field(p, exp, 'duration_s', period.duration);
  same(`${p}.adaptation_set_count`, exp.adaptation_set_count, period.adaptationSets.length);
  exp.adaptation_sets.forEach((a: Json, i: number) => {
    checkSet(`${p}.adaptation_sets[${i}]`, a, mpd, period, period.adaptationSets[i]!);
  });
}

function checkFirstVideo(exp: Json, mpd: Mpd): void {
  const period = mpd.periods[0]!;
  const rep = period.adaptationSets.find((s) => s.kind === 'video')?.representations[0];
  assert.ok(rep, 'first_video: no video representation found');
  same('first_video.representation_id', exp.representation_id, rep.id);
  same('first_video.addressing', exp.addressing, rep.addressing);
  if ('segment_count' in exp)
    same('first_video.segment_count', exp.segment_count, segmentCount(mpd, period, rep));
}

function check(e: Entry): void {
  const bytes = readFileSync(path.join(corpusDir, e.file));
  assert.equal(bytes.length, e.bytes, 'file size differs from the manifest (line endings?)');
  assert.equal(
    createHash('sha256').update(bytes).digest('hex'),
    e.sha256,
    'file bytes differ from the manifest',
  );
  // ignoreBOM keeps a BOM in the text: stripping it is the parser's job.
  const mpd = parseMpd(new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes), BASE);
  const x = e.expect;
  same('type', x.type, mpd.type);
  same('period_count', x.period_count, mpd.periods.length);
  field('', x, 'media_presentation_duration_s', mpd.mediaPresentationDuration, null);
  field('', x, 'availability_start_time', mpd.availabilityStartTime, null);
  field('', x, 'time_shift_buffer_depth_s', mpd.timeShiftBufferDepth, null);
  field('', x, 'minimum_update_period_s', mpd.minimumUpdatePeriod, null);
  same('drm', x.drm, mpd.drm);
  field('', x, 'drm_systems', mpd.drmSystems, []);
  same('addressing', [...x.addressing].sort(), [...new Set(allReps(mpd).map((r) => r.addressing))].sort());
  x.periods.forEach((p: Json, i: number) => {
    checkPeriod(`periods[${i}]`, p, mpd, mpd.periods[i]!);
  });
  if (x.first_video) checkFirstVideo(x.first_video, mpd);
}

function allReps(mpd: Mpd): Representation[] {
  return mpd.periods.flatMap((p) => p.adaptationSets.flatMap((s) => s.representations));
}

const entries: Entry[] = corpusMissing
  ? []
  : JSON.parse(readFileSync(path.join(corpusDir, 'manifest.json'), 'utf8'));
const skip = corpusMissing ? `conformance corpus not found at ${corpusDir}` : false;

test('every DASH conformance MPD parses to its expect facts', { skip }, async (t) => {
  t.diagnostic(`DASH conformance: ${entries.length} MPDs`);
  for (const entry of entries) {
    await t.test(entry.file, () => check(entry));
  }
});
