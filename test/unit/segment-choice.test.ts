/**
 * The pure side of clips and ad skipping: which segments a clip window keeps (clip-window.ts), what the
 * skip rules cut out (skip-rules.ts), the two together on a playlist (segment-choice.ts), and the
 * subtitles cut the same way (subtitle-cut.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clipWindow, fileTime, segmentSpans } from '../../src/pipeline/hls/clip-window.js';
import { chooseSegments } from '../../src/pipeline/hls/segment-choice.js';
import { skipRules, skipSpans } from '../../src/pipeline/hls/skip-rules.js';
import {
  cutCues,
  firstKeptTime,
  runTimes,
  subtitleSegmentsFor,
  type TimelineCut,
} from '../../src/pipeline/hls/subtitle-cut.js';
import type { MediaPlaylist } from '../../src/playlist/model.js';
import { parsePlaylist } from '../../src/playlist/parser.js';
import type { Cue } from '../../src/playlist/webvtt-parser.js';
import { type SubtitleSegment, stitchWebVtt } from '../../src/playlist/webvtt-stitcher.js';
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

describe('subtitles of a clip or a download with skipped segments', () => {
  const cue = (start: number, end: number, text: string): Cue => ({
    id: null,
    start,
    end,
    settings: '',
    text,
  });
  const spans = segmentSpans(ten.segments);

  it('a clip keeps the cues it shows, cut at its edges and timed from its start', () => {
    const cut = { from: 2, removed: [], clip: { start: 3, end: 7 } };
    const cues = [
      cue(0.5, 1.5, 'before'),
      cue(2.5, 3.5, 'across start'),
      cue(4, 5, 'in'),
      cue(6.5, 9, 'across end'),
    ];
    assert.deepEqual(
      cutCues(cues, cut).map((c) => [c.start, c.end, c.text]),
      [
        [0, 0.5, 'across start'],
        [1, 2, 'in'],
        [3.5, 4, 'across end'],
      ],
    );
  });

  it('skipped time takes its cues away and joins a cue across it over the cut', () => {
    // Segments 2 and 3 ([4, 8)) skipped; the file is [0, 4) then [8, 20).
    const cut = { from: 0, removed: [{ start: 4, end: 8 }], clip: null };
    const cues = [cue(1, 2, 'kept'), cue(5, 6, 'skipped'), cue(3, 9, 'across'), cue(10, 11, 'after')];
    assert.deepEqual(
      cutCues(cues, cut).map((c) => [c.start, c.end, c.text]),
      [
        [1, 2, 'kept'],
        [3, 5, 'across'],
        [6, 7, 'after'],
      ],
    );
  });

  it('a clip with skipped time inside it: both cuts, in the clip timeline', () => {
    const cut = { from: 2, removed: [{ start: 6, end: 8 }], clip: { start: 3, end: 12 } };
    assert.deepEqual(
      cutCues([cue(9, 10, 'x')], cut).map((c) => [c.start, c.end]),
      [[4, 5]],
    );
  });

  it('the file starts past segments skipped at the front, and its cues with it', () => {
    const cut = { from: 0, removed: [{ start: 0, end: 4 }], clip: null };
    assert.equal(firstKeptTime(cut), 4);
    assert.equal(firstKeptTime({ from: 2, removed: [{ start: 6, end: 8 }], clip: null }), 2);
    assert.deepEqual(
      cutCues([cue(3, 5, 'across'), cue(6, 7, 'y')], cut).map((c) => [c.start, c.end]),
      [
        [0, 1],
        [2, 3],
      ],
    );
  });

  it('fetches the subtitle segments shown, and the one before each (a cue written only where it starts)', () => {
    // (i): fetched, its mapped cues on another clock than the video kept.
    const fetched = (cut: TimelineCut, breaks: boolean[] = []) =>
      subtitleSegmentsFor(spans, cut, breaks).map((s) => (s.otherClock ? `(${s.index})` : `${s.index}`));
    assert.deepEqual(fetched({ from: 2, removed: [], clip: { start: 3, end: 7 } }), ['0', '1', '2', '3']);
    assert.deepEqual(fetched({ from: 8, removed: [], clip: { start: 9, end: 10 } }), ['3', '4']);
    // Segment 4 starts a discontinuity: segment 3 is on the clock before it.
    const after = { from: 8, removed: [], clip: { start: 9, end: 10 } };
    assert.deepEqual(fetched(after, [false, false, false, false, true]), ['(3)', '4']);
    // Segments 2-6 skipped: 1 and 7 are shown, and 6 is fetched as the one before 7.
    const skipped = { from: 0, removed: [{ start: 4, end: 14 }], clip: { start: 2, end: 16 } };
    assert.deepEqual(fetched(skipped), ['0', '1', '(6)', '7']);
  });

  it("finds where each discontinuity run begins on the playlist's timeline, by the msn of its first segment", () => {
    const pieces = [
      { kind: 'init', msn: -1, run: 0 },
      { kind: 'segment', msn: 0, run: 0 },
      { kind: 'segment', msn: 1, run: 0 },
      // Segments 2 and 3 removed; 4 starts run 1.
      { kind: 'segment', msn: 4, run: 1 },
      { kind: 'segment', msn: 5, run: 1 },
      { kind: 'segment', msn: 9, run: 3 },
    ];
    assert.deepEqual(runTimes(pieces, ten), [0, 8, Number.NaN, 18]);
  });
});

describe('the WebVTT stitcher on a clip, and across discontinuities', () => {
  const segment = (start: number, mpegts: number, local: string, cueTimes: string) => ({
    text: `WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:${mpegts},LOCAL:${local}\n\n${cueTimes}\ntext\n`,
    start,
    duration: 2,
  });

  it('times mapped cues from the first kept segment: its PTS is at originTime on the playlist', () => {
    // The stream's PTS start at 900000 (10 s); the clip's first segment starts 4 s in, at 1260000.
    const seg = segment(4, 1_260_000, '00:00:00.000', '00:00:00.500 --> 00:00:01.000');
    const stitched = stitchWebVtt([seg], { videoStartPts: 1_260_000, originTime: 4 });
    assert.deepEqual(
      stitched.cues.map((c) => [c.start, c.end]),
      [[4.5, 5]],
    );
    // The same segment of the whole playlist: video time 0 at 900000.
    const whole = stitchWebVtt([seg], { videoStartPts: 900_000 });
    assert.deepEqual(
      whole.cues.map((c) => [c.start, c.end]),
      [[4.5, 5]],
    );
  });

  it("times each segment's mapped cues by its own run's clock; those on another clock go", () => {
    // Programme from PTS 900000 at 0 s; an ad at 6 s on its own clock (PTS 9000000); the programme
    // again at 10 s, its clock where it left off (6 s in: 1440000), not 4 s later.
    const runs = [
      { pts: 900_000, time: 0 },
      { pts: 9_000_000, time: 6 },
      { pts: 1_440_000, time: 10 },
    ];
    const at = (start: number, mpegts: number, run: number, otherClock = false) => ({
      ...segment(start, mpegts, '00:00:00.000', '00:00:00.500 --> 00:00:01.000'),
      anchor: runs[run],
      otherClock,
    });
    const cues = (segs: SubtitleSegment[]) =>
      stitchWebVtt(segs, { videoStartPts: 900_000 }).cues.map((c) => [c.start, c.end]);
    assert.deepEqual(cues([at(0, 900_000, 0), at(6, 9_000_000, 1), at(10, 1_440_000, 2)]), [
      [0.5, 1],
      [6.5, 7],
      [10.5, 11],
    ]);
    assert.deepEqual(cues([at(6, 9_000_000, 1, true), at(10, 1_440_000, 2)]), [[10.5, 11]]);
    // Without a map, such a segment's cues are playlist times, and stay.
    const plain = {
      text: 'WEBVTT\n\n00:00:09.500 --> 00:00:10.500\nx\n',
      start: 8,
      duration: 2,
      otherClock: true,
    };
    assert.deepEqual(cues([plain]), [[9.5, 10.5]]);
  });
});
