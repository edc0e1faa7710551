import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { type Cue, parseVttTime, parseWebVtt } from '../../src/playlist/webvtt-parser.js';
import {
  mergeCues,
  ptsDelta,
  type SubtitleSegment,
  stitchWebVtt,
} from '../../src/playlist/webvtt-stitcher.js';
import { formatVttTime, formatWebVtt } from '../../src/playlist/webvtt-writer.js';
import { makeTempDir, runFfprobe, writeFixtureFile } from '../helpers/fixtures.js';
import { makeHlsSubtitles, type SubtitleRenditionFixture } from '../helpers/subtitles.js';

const cue = (start: number, end: number, text: string, extra: Partial<Cue> = {}): Cue => ({
  id: null,
  start,
  end,
  settings: '',
  text,
  ...extra,
});
const times = (cues: readonly Cue[]) => cues.map((c) => [c.start, c.end, c.text]);
const seg = (text: string, start: number, duration = 2): SubtitleSegment => ({ text, start, duration });
const vtt = (...lines: string[]) => lines.join('\n');
const WRAP = 2 ** 33;

describe('parseVttTime / formatVttTime', () => {
  test('reads hh:mm:ss.mmm and mm:ss.mmm, hours beyond 99, and SRT commas', () => {
    assert.equal(parseVttTime('01:02:03.456'), 3723.456);
    assert.equal(parseVttTime('02:03.456'), 123.456);
    assert.equal(parseVttTime('123:00:00.000'), 442_800);
    assert.equal(parseVttTime('00:00:01,250'), 1.25);
    assert.equal(parseVttTime('00:01'), 1);
  });

  test('rejects what is not a timestamp', () => {
    for (const bad of ['', 'abc', '00:60.000', '00:00:60.000', '1.5', '-00:01.000']) {
      assert.equal(parseVttTime(bad), null, bad);
    }
  });

  test('writes hh:mm:ss.mmm rounded to the millisecond, never negative', () => {
    assert.equal(formatVttTime(0), '00:00:00.000');
    assert.equal(formatVttTime(3723.4564), '01:02:03.456');
    assert.equal(formatVttTime(1.0005), '00:00:01.001');
    assert.equal(formatVttTime(59.9996), '00:01:00.000');
    assert.equal(formatVttTime(360_000), '100:00:00.000');
    assert.equal(formatVttTime(-2), '00:00:00.000');
  });
});

describe('parseWebVtt', () => {
  test('reads ids, settings, multi-line payloads and both timestamp forms', () => {
    const doc = parseWebVtt(
      vtt(
        'WEBVTT',
        '',
        'intro',
        '00:00:01.000 --> 00:00:02.500 align:start   line:10%',
        '<v Bob>Hi</v>',
        'there',
        '',
        '00:03.000 --> 00:04.000',
        'Short form',
        '',
      ),
    );
    assert.equal(doc.valid, true);
    assert.deepEqual(doc.cues, [
      { id: 'intro', start: 1, end: 2.5, settings: 'align:start line:10%', text: '<v Bob>Hi</v>\nthere' },
      { id: null, start: 3, end: 4, settings: '', text: 'Short form' },
    ]);
  });

  test('tolerates a BOM, CRLF and lone CR line endings', () => {
    for (const eol of ['\r\n', '\r']) {
      const doc = parseWebVtt(`\uFEFFWEBVTT${eol}${eol}00:01.000 --> 00:02.000${eol}a${eol}b${eol}`);
      assert.deepEqual(times(doc.cues), [[1, 2, 'a\nb']], JSON.stringify(eol));
    }
  });

  test('accepts text after WEBVTT and header metadata, but not WEBVTTX', () => {
    const doc = parseWebVtt(
      vtt('WEBVTT - made by x', 'Kind: captions', 'Language: en', '', '00:01.000 --> 00:02.000', 'a'),
    );
    assert.equal(doc.cues.length, 1);
    assert.equal(parseWebVtt('WEBVTTX\n\n00:01.000 --> 00:02.000\na').valid, false);
  });

  test('reads X-TIMESTAMP-MAP with either field first and LOCAL in both forms', () => {
    const map = (line: string) =>
      parseWebVtt(vtt('WEBVTT', line, '', '00:01.000 --> 00:02.000', 'a')).timestampMap;
    assert.deepEqual(map('X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000'), { mpegts: 900000, local: 0 });
    assert.deepEqual(map('X-TIMESTAMP-MAP=LOCAL:00:00:10.500,MPEGTS:183000'), {
      mpegts: 183000,
      local: 10.5,
    });
    assert.deepEqual(map('X-TIMESTAMP-MAP=LOCAL:01:02.000, MPEGTS:5'), { mpegts: 5, local: 62 });
    // hls.js's defaults for a missing field
    assert.deepEqual(map('X-TIMESTAMP-MAP=MPEGTS:42'), { mpegts: 42, local: 0 });
  });

  test('finds X-TIMESTAMP-MAP written on the signature line (ExoPlayer #7462)', () => {
    const doc = parseWebVtt(
      'WEBVTT X-TIMESTAMP-MAP=MPEGTS:90000,LOCAL:00:00:00.000\n\n00:01.000 --> 00:02.000\na',
    );
    assert.deepEqual(doc.timestampMap, { mpegts: 90000, local: 0 });
  });

  test('a malformed X-TIMESTAMP-MAP is ignored, never thrown', () => {
    for (const line of [
      'X-TIMESTAMP-MAP=MPEGTS:abc,LOCAL:00:00.000',
      'X-TIMESTAMP-MAP=LOCAL:nope,MPEGTS:1',
    ]) {
      const doc = parseWebVtt(vtt('WEBVTT', line, '', '00:01.000 --> 00:02.000', 'a'));
      assert.equal(doc.timestampMap, null, line);
      assert.equal(doc.cues.length, 1);
    }
  });

  test('keeps STYLE and REGION blocks before the first cue; drops NOTE blocks and late STYLE', () => {
    const doc = parseWebVtt(
      vtt(
        'WEBVTT',
        '',
        'NOTE made by hand',
        'second note line',
        '',
        'STYLE',
        '::cue { color: red }',
        '',
        'REGION',
        'id:top width:40%',
        '',
        '00:01.000 --> 00:02.000 region:top',
        'a',
        '',
        'STYLE',
        '::cue { color: blue }',
        '',
        'NOTE',
        '',
        '00:03.000 --> 00:04.000',
        'b',
      ),
    );
    assert.deepEqual(doc.blocks, ['STYLE\n::cue { color: red }', 'REGION\nid:top width:40%']);
    assert.deepEqual(times(doc.cues), [
      [1, 2, 'a'],
      [3, 4, 'b'],
    ]);
    assert.equal(doc.cues[0]?.settings, 'region:top');
  });

  test('a segment that is not WebVTT (empty, HTML, SRT, binary) is invalid with no cues', () => {
    for (const text of [
      '',
      '\n\n',
      '<html><body>404</body></html>',
      '1\n00:00:01,000 --> 00:00:02,000\nsrt',
      '\u0000\u0001G@',
    ]) {
      assert.deepEqual(parseWebVtt(text), { valid: false, timestampMap: null, blocks: [], cues: [] });
    }
  });

  test('skips garbage blocks, bad timestamps, end not after start and empty payloads', () => {
    const doc = parseWebVtt(
      vtt(
        'WEBVTT',
        '',
        'just some words',
        'with no timing',
        '',
        '00:xx.000 --> 00:02.000',
        'bad start',
        '',
        '00:05.000 --> 00:04.000',
        'backwards',
        '',
        '00:06.000 --> 00:07.000',
        '',
        'junk',
        'more junk',
        'id',
        '00:08.000 --> 00:09.000',
        'kept after garbage',
      ),
    );
    assert.deepEqual(doc.cues, [cue(8, 9, 'kept after garbage', { id: 'id' })]);
  });

  test('a timing line inside a payload ends that cue and starts the next', () => {
    const doc = parseWebVtt(
      vtt('WEBVTT', '', '00:01.000 --> 00:02.000', 'a', '00:03.000 --> 00:04.000', 'b'),
    );
    assert.deepEqual(times(doc.cues), [
      [1, 2, 'a'],
      [3, 4, 'b'],
    ]);
  });

  test('keeps a cue that follows a NOTE or STYLE block without the blank line', () => {
    const doc = parseWebVtt(
      vtt(
        'WEBVTT',
        '',
        'NOTE x',
        '00:01.000 --> 00:02.000',
        'a',
        '',
        'STYLE',
        '00:03.000 --> 00:04.000',
        'b',
      ),
    );
    assert.deepEqual(times(doc.cues), [
      [1, 2, 'a'],
      [3, 4, 'b'],
    ]);
  });

  test('reads an X-TIMESTAMP-MAP separated from WEBVTT by a blank line', () => {
    const doc = parseWebVtt(
      vtt('WEBVTT', '', 'X-TIMESTAMP-MAP=MPEGTS:9000,LOCAL:00:00.000', '', '00:01.000 --> 00:02.000', 'a'),
    );
    assert.deepEqual(doc.timestampMap, { mpegts: 9000, local: 0 });
    assert.equal(doc.cues.length, 1);
  });

  test('keeps a cue that follows the header without the blank line', () => {
    const doc = parseWebVtt(
      vtt('WEBVTT', 'X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00.000', '00:01.000 --> 00:02.000', 'a'),
    );
    assert.deepEqual(times(doc.cues), [[1, 2, 'a']]);
    assert.deepEqual(doc.timestampMap, { mpegts: 0, local: 0 });
  });
});

describe('ptsDelta', () => {
  test('is the plain difference away from the wrap', () => {
    assert.equal(ptsDelta(900_000, 126_000), 774_000);
    assert.equal(ptsDelta(126_000, 900_000), -774_000);
  });

  test('takes the near side of the 33-bit wrap in both directions', () => {
    assert.equal(ptsDelta(90_000, WRAP - 90_000), 180_000); // PTS wrapped after the origin
    assert.equal(ptsDelta(WRAP - 90_000, 90_000), -180_000); // origin already wrapped
    assert.equal(ptsDelta(WRAP + 5, 5), 0); // unwrapped values are reduced too
  });
});

describe('stitchWebVtt: timing', () => {
  const mapped = (mpegts: number, local: string, ...cueLines: string[]) =>
    vtt('WEBVTT', `X-TIMESTAMP-MAP=MPEGTS:${mpegts},LOCAL:${local}`, '', ...cueLines);

  test('maps cues through X-TIMESTAMP-MAP onto the output timeline: cue - LOCAL + (MPEGTS - origin) / 90 kHz', () => {
    const text = mapped(900_000, '00:00:00.000', '00:00:01.000 --> 00:00:02.000', 'a');
    assert.deepEqual(times(stitchWebVtt([seg(text, 0)], { videoStartPts: 900_000 }).cues), [[1, 2, 'a']]);
    // video starts 8.6 s of PTS earlier than the map's anchor
    assert.deepEqual(times(stitchWebVtt([seg(text, 0)], { videoStartPts: 126_000 }).cues), [
      [9.6, 10.6, 'a'],
    ]);
    // cue times on a 10-hour clock, LOCAL names the anchor on that clock
    const tenHours = mapped(900_000, '10:00:00.000', '10:00:01.000 --> 10:00:02.000', 'a');
    assert.deepEqual(times(stitchWebVtt([seg(tenHours, 0)], { videoStartPts: 900_000 }).cues), [[1, 2, 'a']]);
  });

  test('resolves the 33-bit PTS wrap: a map that wrapped lands after the origin, not 26.5 hours away', () => {
    const origin = WRAP - 90_000; // 1 s before the wrap
    const before = mapped(origin, '00:00:00.000', '00:00:00.500 --> 00:00:01.500', 'before');
    const after = mapped(90_000, '00:00:00.000', '00:00:00.500 --> 00:00:01.500', 'after'); // 2 s later
    const r = stitchWebVtt([seg(before, 0), seg(after, 2)], { videoStartPts: origin });
    assert.deepEqual(times(r.cues), [
      [0.5, 1.5, 'before'],
      [2.5, 3.5, 'after'],
    ]);
    // and the other way round: the video's first PTS is past the wrap, the map's anchor 1.5 s before it
    const early = mapped(WRAP - 90_000, '00:00:00.000', '00:00:02.000 --> 00:00:03.000', 'x');
    const r2 = stitchWebVtt([seg(early, 0)], { videoStartPts: 45_000 });
    assert.deepEqual(times(r2.cues), [[0.5, 1.5, 'x']]);
  });

  test("without videoStartPts, the first map's MPEGTS is the origin", () => {
    const a = mapped(1_000_000, '00:00:00.000', '00:00:00.400 --> 00:00:01.000', 'a');
    const b = mapped(1_000_000 + 180_000, '00:00:00.000', '00:00:00.400 --> 00:00:01.000', 'b');
    const r = stitchWebVtt([seg(a, 0), seg(b, 2)], { videoStartPts: null });
    assert.equal(r.originPts, 1_000_000);
    assert.deepEqual(times(r.cues), [
      [0.4, 1, 'a'],
      [2.4, 3, 'b'],
    ]);
  });

  test('without a map, detects segment-relative cue times and adds each segment start', () => {
    const segments = [0, 2, 4].map((start, i) =>
      seg(vtt('WEBVTT', '', '00:00.200 --> 00:01.500', `cue ${i}`), start),
    );
    const r = stitchWebVtt(segments, { videoStartPts: 900_000 });
    assert.equal(r.unmappedTiming, 'segment-relative');
    assert.deepEqual(times(r.cues), [
      [0.2, 1.5, 'cue 0'],
      [2.2, 3.5, 'cue 1'],
      [4.2, 5.5, 'cue 2'],
    ]);
  });

  test('without a map, keeps presentation cue times, even with a boundary cue that starts before its segment', () => {
    const segments = [
      seg(vtt('WEBVTT', '', '00:00.500 --> 00:02.500', 'spans'), 0),
      seg(vtt('WEBVTT', '', '00:00.500 --> 00:02.500', 'spans', '', '00:03.000 --> 00:03.500', 'b'), 2),
      seg(vtt('WEBVTT', '', '00:04.500 --> 00:05.000', 'c'), 4),
    ];
    const r = stitchWebVtt(segments, { videoStartPts: 126_000 });
    assert.equal(r.unmappedTiming, 'presentation');
    assert.deepEqual(times(r.cues), [
      [0.5, 2.5, 'spans'],
      [3, 3.5, 'b'],
      [4.5, 5, 'c'],
    ]);
  });

  test("missingMap 'mpegts-zero' applies RFC 8216's rule: cue time 0 is PTS 0", () => {
    const text = vtt('WEBVTT', '', '00:00:11.000 --> 00:00:12.000', 'a');
    const r = stitchWebVtt([seg(text, 0)], { videoStartPts: 900_000, missingMap: 'mpegts-zero' });
    assert.equal(r.unmappedTiming, 'mpegts-zero');
    assert.deepEqual(times(r.cues), [[1, 2, 'a']]);
  });

  test('drops cues that end before 0 and clamps starts below 0', () => {
    const text = mapped(
      900_000,
      '00:00:00.000',
      '00:00:00.100 --> 00:00:00.900',
      'gone',
      '',
      '00:00:00.500 --> 00:00:03.000',
      'clamped',
    );
    const r = stitchWebVtt([seg(text, 0)], { videoStartPts: 990_000 }); // output starts 1 s after the anchor
    assert.deepEqual(times(r.cues), [[0, 2, 'clamped']]);
  });

  test('skips segments that are not WebVTT and says which', () => {
    const ok = vtt('WEBVTT', '', '00:02.500 --> 00:03.000', 'a');
    const r = stitchWebVtt([seg('<html>oops</html>', 0), seg(ok, 2), seg('', 4)], { videoStartPts: null });
    assert.deepEqual(r.skippedSegments, [0, 2]);
    assert.deepEqual(times(r.cues), [[2.5, 3, 'a']]);
  });
});

describe('stitchWebVtt: duplicates, ids, output', () => {
  test('a cue repeated in two segments becomes one cue covering both, exact or clipped repeats', () => {
    const map = 'X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000';
    const exact = [
      seg(vtt('WEBVTT', map, '', '00:01.800 --> 00:02.600 line:0', 'x'), 0),
      seg(vtt('WEBVTT', map, '', '00:01.800 --> 00:02.600 line:0', 'x'), 2),
    ];
    assert.deepEqual(times(stitchWebVtt(exact, { videoStartPts: 900_000 }).cues), [[1.8, 2.6, 'x']]);
    const clipped = [
      seg(vtt('WEBVTT', map, '', '00:01.800 --> 00:02.000', 'x'), 0),
      seg(vtt('WEBVTT', map, '', '00:02.000 --> 00:02.600', 'x'), 2),
      seg(vtt('WEBVTT', map, '', '00:04.030 --> 00:05.000', 'x'), 4), // 1.43 s later: a new cue
    ];
    assert.deepEqual(times(stitchWebVtt(clipped, { videoStartPts: 900_000 }).cues), [
      [1.8, 2.6, 'x'],
      [4.03, 5, 'x'],
    ]);
  });

  test('merges equal cues up to 50 ms apart, but not different text or settings', () => {
    const merged = mergeCues([cue(1, 2, 'a'), cue(2.04, 3, 'a'), cue(3.2, 4, 'a')]);
    assert.deepEqual(times(merged), [
      [1, 3, 'a'],
      [3.2, 4, 'a'],
    ]);
    const apart = mergeCues([cue(1, 2, 'a'), cue(1, 2, 'b'), cue(1, 2, 'a', { settings: 'line:0' })]);
    assert.equal(apart.length, 3);
  });

  test('keeps cues in start order and only the cue ids that stay unique', () => {
    const out = mergeCues([
      cue(5, 6, 'late', { id: '1' }),
      cue(1, 2, 'early', { id: '1' }),
      cue(3, 4, 'mid', { id: 'm' }),
    ]);
    assert.deepEqual(
      out.map((c) => [c.text, c.id]),
      [
        ['early', null],
        ['mid', 'm'],
        ['late', null],
      ],
    );
  });

  test('writes WEBVTT, a blank line, then the cues; with keepBlocks, each STYLE/REGION block once first', () => {
    const style = 'STYLE\n::cue { color: red }';
    const text = (c: string) => vtt('WEBVTT', '', style, '', '00:01.000 --> 00:02.000 align:end', c);
    const plain = stitchWebVtt([seg(text('a'), 0)], { videoStartPts: null });
    assert.equal(plain.vtt, 'WEBVTT\n\n00:00:01.000 --> 00:00:02.000 align:end\na\n');
    const r = stitchWebVtt([seg(text('a'), 0), seg(text('b'), 0)], { videoStartPts: null, keepBlocks: true });
    assert.equal(
      r.vtt,
      [
        'WEBVTT',
        '',
        style,
        '',
        '00:00:01.000 --> 00:00:02.000 align:end',
        'a',
        '',
        '00:00:01.000 --> 00:00:02.000 align:end',
        'b',
        '',
      ].join('\n'),
    );
    assert.equal(stitchWebVtt([], { videoStartPts: null }).vtt, 'WEBVTT\n');
  });

  test('serialization round-trips: parsing the output gives back the same cues', () => {
    const cues = [
      cue(0, 1.001, 'one', { id: 'a' }),
      cue(61.5, 3600.25, 'two\n<i>lines</i> &amp; more', { settings: 'position:10% align:start' }),
      cue(4000, 4000.5, 'three'),
    ];
    assert.deepEqual(parseWebVtt(formatWebVtt(cues)).cues, cues);
  });

  test('never writes a payload that would end or split its cue', () => {
    const out = formatWebVtt([cue(1, 2, 'a\n\n b --> c')]);
    assert.deepEqual(times(parseWebVtt(out).cues), [[1, 2, 'a\n b --&gt; c']]);
  });
});

describe('stitchWebVtt on the ffmpeg-made fixture', () => {
  async function stitchRendition(r: SubtitleRenditionFixture, videoStartPts: number, keepBlocks = false) {
    const folder = path.dirname(r.playlist);
    const segments = await Promise.all(
      r.segments.map(async (uri, i) => ({
        text: await readFile(path.join(folder, uri), 'utf8'),
        start: r.segmentStarts[i]!,
        duration: r.segmentDurations[i]!,
      })),
    );
    return stitchWebVtt(segments, { videoStartPts, keepBlocks });
  }

  // Where a source cue belongs in an ffmpeg `-c copy` MP4 of the variant: time 0 there is the
  // earliest first PTS (the audio's), the first video frame sits videoOffset (~21.3 ms) later.
  async function expectSourceCues(r: SubtitleRenditionFixture, toleranceMs: number) {
    const fx = await makeHlsSubtitles();
    const out = await stitchRendition(r, fx.originPts);
    assert.deepEqual(
      out.cues.map((c) => [c.text, c.settings]),
      r.cues.map((c) => [c.text, c.settings]),
    );
    for (const [i, c] of out.cues.entries()) {
      const want = r.cues[i]!;
      for (const k of ['start', 'end'] as const) {
        const err = Math.abs(c[k] - (want[k] + fx.videoOffset)) * 1000;
        assert.ok(err <= toleranceMs, `${r.language} cue ${i} ${k}: ${c[k]} is ${err.toFixed(2)} ms off`);
      }
    }
    return out;
  }

  test("ffmpeg's own segments (no X-TIMESTAMP-MAP) give back the source cues within 1 ms", async () => {
    const fx = await makeHlsSubtitles();
    const out = await expectSourceCues(fx.subtitles[0], 1);
    assert.equal(out.unmappedTiming, 'presentation');
    assert.deepEqual(
      out.cues.map((c) => c.id),
      ['1', '2', '3', null, null],
    );
  });

  test('Apple-style mapped, segment-relative segments with repeated cues give back the source cues within 1 ms', async () => {
    const fx = await makeHlsSubtitles();
    const out = await expectSourceCues(fx.subtitles[1], 1);
    assert.equal(out.unmappedTiming, 'none');
    assert.doesNotMatch(out.vtt, /STYLE/);
    const styled = await stitchRendition(fx.subtitles[1], fx.originPts, true);
    assert.equal(styled.vtt.split('STYLE').length - 1, 1, 'the STYLE block of all four segments, once');
    assert.match(styled.vtt, /^WEBVTT\n\nSTYLE\n::cue \{\n {2}color: yellow;\n\}\n\n/);
    // relative to the first video frame instead, the mapped track lands exactly on the source times
    const exact = await stitchRendition(fx.subtitles[1], fx.videoStartPts);
    assert.deepEqual(
      exact.cues.map((c) => [c.start, c.end]),
      fx.subtitles[1].cues.map((c) => [c.start, c.end]),
    );
  });

  test("ffmpeg's WebVTT demuxer reads the stitched file with the same cue times", async () => {
    const fx = await makeHlsSubtitles();
    const out = await stitchRendition(fx.subtitles[1], fx.originPts);
    const file = await writeFixtureFile(await makeTempDir('stitched'), 'fr.vtt', out.vtt);
    const probe = await runFfprobe([
      ...['-show_entries', 'packet=pts_time,duration_time', '-of', 'json', file],
    ]);
    const packets = (
      JSON.parse(probe.toString()) as { packets: { pts_time: string; duration_time: string }[] }
    ).packets;
    assert.deepEqual(
      packets.map((p) => [
        Number(p.pts_time),
        Number((Number(p.pts_time) + Number(p.duration_time)).toFixed(3)),
      ]),
      out.cues.map((c) => [c.start, c.end]),
    );
  });
});
