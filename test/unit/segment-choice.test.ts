/**
 * The pure side of clips and ad skipping: which segments a clip window keeps (clip-window.ts), what the
 * skip rules cut out (skip-rules.ts), and the two together on a playlist (segment-choice.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clipWindow, fileTime, segmentSpans } from '../../src/pipeline/hls/clip-window.js';
import { chooseSegments } from '../../src/pipeline/hls/segment-choice.js';
import { skipRules, skipSpans } from '../../src/pipeline/hls/skip-rules.js';
import type { MediaPlaylist } from '../../src/playlist/model.js';
import { parsePlaylist } from '../../src/playlist/parser.js';
import { isGabeError } from '../../src/service/errors.js';

/** A VOD playlist: `[seconds, uri]` per segment, `'|'` for EXT-X-DISCONTINUITY. */
function media(items: ([number, string] | '|')[]): MediaPlaylist {
  const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:10', '#EXT-X-PLAYLIST-TYPE:VOD'];
  for (const item of items) {
    if (item === '|') lines.push('#EXT-X-DISCONTINUITY');
    else lines.push(`#EXTINF:${item[0]},`, item[1]);
  }
  lines.push('#EXT-X-ENDLIST');
  const p = parsePlaylist(lines.join('\n'), 'https://cdn.example/show/index.m3u8');
  assert.equal(p.kind, 'media');
  return p as MediaPlaylist;
}

const ten = media(Array.from({ length: 10 }, (_, i): [number, string] => [2, `s${i}.ts`]));
const isValidation = (err: unknown) => isGabeError(err) && err.kind === 'VALIDATION';

describe('clip window', () => {
  const spans = segmentSpans(ten.segments);

  it('keeps the segments whose [t, t+EXTINF) overlaps [start, end)', () => {
    assert.deepEqual(clipWindow(spans, { start: 3, end: 7 }), { first: 1, last: 3 });
    // A segment starting exactly at end is not needed; one ending exactly at start is not either.
    assert.deepEqual(clipWindow(spans, { start: 4, end: 8 }), { first: 2, last: 3 });
  });

  it('runs to the last segment without an end, and takes preroll segments before the window', () => {
    assert.deepEqual(clipWindow(spans, { start: 15, end: null }), { first: 7, last: 9 });
    assert.deepEqual(clipWindow(spans, { start: 5, end: 6 }, 2), { first: 0, last: 2 });
  });

  it('refuses a start at or beyond the end of the media', () => {
    assert.throws(() => clipWindow(spans, { start: 20, end: null }), isValidation);
    assert.doesNotThrow(() => clipWindow(spans, { start: 19.9, end: null }));
  });

  it('maps timeline times into the file of the kept segments, less what was cut out', () => {
    assert.equal(fileTime(7, 4, []), 3);
    assert.equal(fileTime(13, 2, [{ start: 6, end: 10 }]), 7);
    // Inside a removed span: where it was cut out.
    assert.equal(fileTime(8, 2, [{ start: 6, end: 10 }]), 4);
  });
});

describe('skip rules', () => {
  const ad = media([[6, 'p0.ts'], '|', [2, 'ads/a0.ts'], [2, 'ads/a1.ts'], '|', [6, 'p1.ts']]);
  const spans = segmentSpans(ad.segments);
  const urls = ad.segments.map((s) => s.resolvedUri ?? s.uri);

  it('none without patterns or a run length', () => {
    assert.equal(skipRules({}), null);
    assert.equal(skipRules({ skip_segments: [], skip_discontinuity_runs: null }), null);
  });

  it('refuses invalid patterns and nested quantifiers', () => {
    assert.throws(() => skipRules({ skip_segments: ['(ads'] }), isValidation);
    assert.throws(() => skipRules({ skip_segments: ['(a+)+b'] }), isValidation);
    assert.throws(() => skipRules({ skip_segments: ['(\\w*)*'] }), isValidation);
    assert.throws(() => skipRules({ skip_segments: ['ad\\_break'] }), isValidation, 'strict escapes');
    assert.ok(skipRules({ skip_segments: ['/ads/', 'seg_(\\d+)\\.ts$', '[/_-]ad[/_-]'] }));
  });

  it('matches the resolved URL, and merges adjacent skipped segments into one span', () => {
    const rules = skipRules({ skip_segments: ['^https://cdn\\.example/show/ads/'] })!;
    assert.deepEqual(skipSpans(ad.segments, spans, urls, rules), {
      spans: [{ start: 6, end: 10 }],
      warning: null,
    });
  });

  it('skips runs no longer than N seconds, but none when every run is that short', () => {
    const short = skipRules({ skip_discontinuity_runs: 4 })!;
    assert.deepEqual(skipSpans(ad.segments, spans, urls, short).spans, [{ start: 6, end: 10 }]);
    const all = skipSpans(ad.segments, spans, urls, skipRules({ skip_discontinuity_runs: 6 })!);
    assert.deepEqual(all.spans, []);
    assert.match(all.warning ?? '', /none was skipped/);
  });
});

describe('segment choice', () => {
  it('keeps a clip window less the skipped spans; a kept segment after removed ones starts a run', () => {
    const choice = chooseSegments(ten, { start: 3, end: 13 }, [{ start: 6, end: 10 }]);
    assert.deepEqual(
      choice.media.segments.map((s) => [s.uri, s.discontinuity]),
      [
        ['s1.ts', false],
        ['s2.ts', false],
        ['s5.ts', true],
        ['s6.ts', false],
      ],
    );
    assert.equal(choice.from, 2);
    assert.deepEqual(choice.skipped, { segments: 2, seconds: 4 });
  });

  it('judges a segment of another rendition by its middle, so unaligned segments follow the same times', () => {
    const audio = media(Array.from({ length: 5 }, (_, i): [number, string] => [4, `a${i}.aac`]));
    const choice = chooseSegments(audio, null, [{ start: 6, end: 10 }]);
    // a1 is [4, 8) (middle 6: skipped), a2 [8, 12) (middle 10: kept).
    assert.deepEqual(
      choice.media.segments.map((s) => s.uri),
      ['a0.aac', 'a2.aac', 'a3.aac', 'a4.aac'],
    );
  });

  it('refuses rules that leave nothing to download', () => {
    assert.throws(() => chooseSegments(ten, null, [{ start: 0, end: 20 }]), isValidation);
  });
});
