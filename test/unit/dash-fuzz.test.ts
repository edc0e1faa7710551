/**
 * MPD fuzzing: every file of the shared DASH conformance corpus (plus a few inline MPDs covering the
 * addressing modes the corpus lacks), mutated at random (attribute values swapped for weird ones,
 * attributes and elements dropped, duplicated or cut, bytes flipped, the text truncated), goes
 * through parseMpd and representationSegments for every Representation, live ones at a fixed clock.
 *
 * Proven: nothing throws anything but a GabeError, the segments keep their invariants (absolute
 * URLs, finite times, safe-integer ranges), and no case takes more than 2 s. Every case is
 * reproducible from the seed and its index:
 *
 *   GABE_FUZZ_SEED=<seed> GABE_FUZZ_ONLY=<index> node --import tsx --test test/unit/dash-fuzz.test.ts
 *
 * GABE_FUZZ_CASES sets the number of cases (default 3,000).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseMpd } from '../../src/playlist/dash/mpd-parser.js';
import { representationSegments } from '../../src/playlist/dash/mpd-segments.js';
import { GabeError } from '../../src/service/errors.js';
import { int, mulberry32, pickOf, type Rng, type Source, WEIRD_VALUES } from '../helpers/mutate.js';

const SEED = Number(process.env['GABE_FUZZ_SEED'] ?? 20_261_206);
const CASES = Number(process.env['GABE_FUZZ_CASES'] ?? 3_000);
const ONLY = process.env['GABE_FUZZ_ONLY'];
const SLOW_MS = 2_000;
const URL_ = 'https://cdn.example.com/dash/manifest.mpd';
const NOW_MS = Date.parse('2026-12-06T10:00:00Z');
const NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"';

const INLINE: Source[] = [
  {
    name: 'inline/timeline-r-1',
    text: `<MPD ${NS} type="dynamic" availabilityStartTime="2026-12-06T09:00:00Z" timeShiftBufferDepth="PT60S">
<Period start="PT0S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate timescale="90000" presentationTimeOffset="90000"
 media="$RepresentationID$/$Time%08d$.m4s" initialization="$RepresentationID$/init.mp4"><SegmentTimeline>
<S t="90000" d="180000" r="-1"/></SegmentTimeline></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`,
  },
  {
    name: 'inline/live-number',
    text: `<MPD ${NS} type="dynamic" availabilityStartTime="2026-12-06T09:59:00Z" timeShiftBufferDepth="PT30S">
<Period start="PT10S"><AdaptationSet><SegmentTemplate timescale="1" duration="2" availabilityTimeOffset="1"
 media="$Number%05d$.m4s"/><Representation id="v"/></AdaptationSet></Period></MPD>`,
  },
  {
    name: 'inline/list-base',
    text: `<MPD ${NS} mediaPresentationDuration="PT10S"><BaseURL>media/</BaseURL><Period>
<AdaptationSet><Representation id="l"><BaseURL>v.mp4</BaseURL><SegmentList timescale="1000" duration="5000">
<Initialization range="0-99"/><SegmentURL mediaRange="100-199"/><SegmentURL media="b.m4s"/></SegmentList></Representation>
<Representation id="b"><BaseURL>b.mp4</BaseURL><SegmentBase indexRange="10-20"><Initialization range="0-9"/></SegmentBase></Representation>
</AdaptationSet></Period></MPD>`,
  },
];

function corpusSources(): Source[] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dir = path.resolve(here, '../../../shared/conformance/dash');
  const manifest = path.join(dir, 'manifest.json');
  if (!existsSync(manifest)) return [];
  const entries = JSON.parse(readFileSync(manifest, 'utf8')) as { file: string }[];
  return entries.map((e) => ({
    name: `corpus/${e.file}`,
    text: readFileSync(path.join(dir, e.file), 'utf8'),
  }));
}

// ---------------------------------------------------------------------------------------------
// Mutations: each takes the text and returns a changed one.

const ATTRIBUTE = /(\w+(?::\w+)?)="([^"]*)"/g;
const ELEMENT = /<(\w+)[^>]*\/>|<(\w+)[^>]*>[\s\S]*?<\/\2>/g;
const MPD_VALUES = [
  ...WEIRD_VALUES.slice(0, 30),
  'P100Y',
  'PT0S',
  'PT-5S',
  'PT1e9S',
  'P99999999999999999999D',
  '2026-13-45T99:99:99Z',
  '-1',
  '1000000000',
  '4294967296',
  '$Number%0999999999d$',
  '$Time$$RepresentationID$$$',
  '$Number%05x$',
  '0-18446744073709551616',
  '10-5',
  'urn:uuid:EDEF8BA9-79D6-4ACE-A3C8-27DCD51D21ED',
  'http://[::1',
  '//',
  'INF',
];

function matches(text: string, re: RegExp): RegExpMatchArray[] {
  return [...text.matchAll(re)];
}

const MUTATIONS: Record<string, (text: string, rng: Rng) => string> = {
  weirdValue(text, rng) {
    const all = matches(text, ATTRIBUTE);
    if (!all.length) return text;
    const m = pickOf(rng, all);
    const at = m.index! + m[1]!.length + 2;
    return text.slice(0, at) + pickOf(rng, MPD_VALUES) + text.slice(at + m[2]!.length);
  },
  dropAttribute(text, rng) {
    const all = matches(text, ATTRIBUTE);
    if (!all.length) return text;
    const m = pickOf(rng, all);
    return text.slice(0, m.index!) + text.slice(m.index! + m[0].length);
  },
  dropElement(text, rng) {
    const all = matches(text, ELEMENT);
    if (!all.length) return text;
    const m = pickOf(rng, all);
    return text.slice(0, m.index!) + text.slice(m.index! + m[0].length);
  },
  repeatElement(text, rng) {
    const all = matches(text, ELEMENT);
    if (!all.length) return text;
    const m = pickOf(rng, all);
    return text.slice(0, m.index!) + m[0].repeat(1 + int(rng, 20)) + text.slice(m.index!);
  },
  addTimelineRepeat(text, rng) {
    return text.replace(/<S /, `<S r="${pickOf(rng, ['-1', '50000', '1000000000', '0'])}" `);
  },
  truncate(text, rng) {
    return text.slice(0, int(rng, text.length));
  },
  flipBytes(text, rng) {
    const chars = [...text];
    for (let n = 1 + int(rng, 8); n > 0; n--)
      chars[int(rng, chars.length)] = pickOf(rng, ['<', '>', '"', '&', '/', '\0', '$', 'é']);
    return chars.join('');
  },
  renameElement(text, rng) {
    const names = [
      'SegmentTemplate',
      'SegmentList',
      'SegmentBase',
      'SegmentTimeline',
      'BaseURL',
      'Period',
      'S',
      '__proto__',
    ];
    const from = pickOf(rng, names);
    return text
      .replaceAll(`<${from}`, `<${pickOf(rng, names)}`)
      .replaceAll(`</${from}`, `</${pickOf(rng, names)}`);
  },
};

function makeMpdCase(sources: Source[], index: number): { source: string; ops: string[]; text: string } {
  const rng = mulberry32((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const source = pickOf(rng, sources);
  const ops: string[] = [];
  let text = source.text;
  for (let n = 1 + int(rng, 3); n > 0; n--) {
    const op = pickOf(rng, Object.keys(MUTATIONS));
    ops.push(op);
    text = MUTATIONS[op]!(text, rng);
  }
  return { source: source.name, ops, text };
}

// ---------------------------------------------------------------------------------------------

class Invariant extends Error {}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Invariant(what);
}

/** Runs one MPD through parse and every Representation's segments; returns the outcome label. */
function exercise(text: string): string {
  try {
    const mpd = parseMpd(text, URL_);
    for (const period of mpd.periods) {
      for (const set of period.adaptationSets) {
        for (const rep of set.representations) {
          const segs = representationSegments(mpd, period, rep, { nowMs: NOW_MS });
          if (segs.kind === 'index') continue;
          for (const s of segs.segments) {
            check(/^https?:\/\//.test(s.url), `segment URL ${s.url}`);
            check(
              Number.isFinite(s.start) && Number.isFinite(s.duration),
              `segment time ${s.start}+${s.duration}`,
            );
            check(Number.isFinite(s.number), `segment number ${s.number}`);
            if (s.range) check(Number.isSafeInteger(s.range.offset + s.range.length), 'segment range');
          }
        }
      }
    }
    return 'parsed';
  } catch (err) {
    if (err instanceof GabeError) return err.code;
    throw err;
  }
}

test('mutated MPDs never throw anything but a GabeError, and segments keep their invariants', (t) => {
  const sources = [...INLINE, ...corpusSources()];
  const outcomes: Record<string, number> = {};
  const failures: string[] = [];
  let slowest = { index: -1, ms: 0 };
  const indices = ONLY === undefined ? Array.from({ length: CASES }, (_, i) => i) : [Number(ONLY)];
  for (const i of indices) {
    const c = makeMpdCase(sources, i);
    const started = performance.now();
    try {
      const outcome = exercise(c.text);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    } catch (err) {
      failures.push(
        `case ${i} (${c.source}: ${c.ops.join(', ')}): ${err instanceof Error ? err.stack : String(err)}`,
      );
      if (failures.length >= 10) break;
    }
    const ms = performance.now() - started;
    if (ms > slowest.ms) slowest = { index: i, ms };
    if (ms > SLOW_MS) failures.push(`case ${i} (${c.source}: ${c.ops.join(', ')}) took ${Math.round(ms)} ms`);
  }
  t.diagnostic(
    `seed ${SEED}: ${JSON.stringify(outcomes)}, slowest case ${slowest.index}: ${Math.round(slowest.ms)} ms`,
  );
  assert.deepEqual(failures, []);
  assert.ok(outcomes['parsed']! > indices.length / 10 || ONLY !== undefined, 'most cases should still parse');
});
