/**
 * Hand-written MPDs for each addressing mode and the edges the conformance corpus lacks (timeline
 * r = -1, $Time$, format tags, presentationTimeOffset, inheritance with overrides, BaseURL chains,
 * live windows at a fixed clock, the segment cap, hostile XML), and the sidx of a real file made by
 * ffmpeg, checked against the file's own boxes.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { findSidx, parseSidx } from '../../src/media/sidx.js';
import type { Mpd, Representation } from '../../src/playlist/dash/mpd-model.js';
import { isMpd, parseMpd } from '../../src/playlist/dash/mpd-parser.js';
import {
  type DashSegment,
  MAX_DASH_SEGMENTS,
  type RepresentationSegments,
  representationSegments,
} from '../../src/playlist/dash/mpd-segments.js';
import { expandTemplate, mediaUrlTemplate } from '../../src/playlist/dash/mpd-template.js';
import { parseDuration, resolveUrl } from '../../src/playlist/dash/mpd-values.js';
import { GabeError } from '../../src/service/errors.js';
import { makeTempDir, runFfmpeg, runFfprobe } from '../helpers/fixtures.js';

const URL_ = 'https://cdn.example.com/show/manifest.mpd';
const NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"';

/** A static one-period MPD around `body` (AdaptationSets). */
const vod = (body: string, attrs = 'mediaPresentationDuration="PT10S"') =>
  `<?xml version="1.0"?>\n<MPD ${NS} type="static" ${attrs}><Period id="p0">${body}</Period></MPD>`;

function firstRep(mpd: Mpd): Representation {
  const rep = mpd.periods[0]?.adaptationSets[0]?.representations[0];
  assert.ok(rep, 'no representation');
  return rep;
}

function segmentsOf(text: string, nowMs?: number, url = URL_): DashSegment[] {
  const mpd = parseMpd(text, url);
  const segs = representationSegments(mpd, mpd.periods[0]!, firstRep(mpd), { nowMs });
  assert.equal(segs.kind, 'segments');
  return (segs as Extract<RepresentationSegments, { kind: 'segments' }>).segments;
}

function throwsKind(fn: () => unknown, kind: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof GabeError, `not a GabeError: ${String(err)}`);
    assert.equal(err.kind, kind);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('MPD values and sniffing', () => {
  test('ISO 8601 durations read hours, minutes, fractional seconds and days', () => {
    assert.equal(parseDuration('PT1H2M3.5S'), 3723.5);
    assert.equal(parseDuration('P1DT1S'), 86_401);
    assert.equal(parseDuration('PT0S'), 0);
    assert.equal(parseDuration('PT'), null);
    assert.equal(parseDuration('-PT5S'), null);
    assert.equal(parseDuration('5'), null);
  });

  test('isMpd sees through a BOM, the XML declaration, comments and a namespace prefix', () => {
    assert.ok(isMpd(`\uFEFF  <?xml version="1.0"?>\n<!-- a -->\n<!-- b --><MPD ${NS}/>`));
    assert.ok(isMpd('<mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011"></mpd:MPD>'));
    assert.equal(isMpd('#EXTM3U\n#EXTINF:4,\na.ts'), false);
    assert.equal(isMpd('<html><body>MPD</body></html>'), false);
    assert.equal(isMpd('<MPDX/>'), false);
    assert.ok(isMpd(`${'\t \r\n'.repeat(50_000)}<MPD/>`), 'any amount of leading whitespace');
    assert.equal(isMpd(`<!--${' '.repeat(200_000)}`), false, 'an unterminated comment');
  });

  test('an HLS playlist, an HTML page and broken XML are NOT_A_PLAYLIST', () => {
    throwsKind(() => parseMpd('#EXTM3U\n', URL_), 'NOT_A_PLAYLIST');
    throwsKind(() => parseMpd('<!doctype html><html></html>', URL_), 'NOT_A_PLAYLIST');
    throwsKind(() => parseMpd(`<MPD ${NS}><Period></MPD>`, URL_), 'NOT_A_PLAYLIST', /broken XML/);
  });

  test('a billion-laughs entity bomb is not expanded and parses in well under a second', () => {
    const entities = ['<!ENTITY lol "lol">'];
    for (let i = 1; i < 10; i++)
      entities.push(`<!ENTITY lol${i} "${`&lol${i === 1 ? '' : i - 1};`.repeat(10)}">`);
    const bomb = `<?xml version="1.0"?><!DOCTYPE MPD [${entities.join('')}]>
<MPD ${NS} mediaPresentationDuration="PT4S"><Period><AdaptationSet><Representation id="&lol9;" bandwidth="1">
<BaseURL>v.mp4</BaseURL></Representation></AdaptationSet></Period></MPD>`;
    const started = performance.now();
    let id: string | null = null;
    try {
      id = firstRep(parseMpd(bomb, URL_)).id;
    } catch (err) {
      assert.ok(err instanceof GabeError, `not a GabeError: ${String(err)}`);
    }
    assert.ok(performance.now() - started < 1000);
    assert.equal(id, '&lol9;', 'the entity reference stays as written');
  });

  test('the five XML entities and character references in a BaseURL are decoded', () => {
    const rep = firstRep(
      parseMpd(
        vod(
          '<AdaptationSet><Representation id="a"><BaseURL>v.mp4?a=1&amp;b=&#50;</BaseURL></Representation></AdaptationSet>',
        ),
        URL_,
      ),
    );
    assert.equal(rep.baseUrl, 'https://cdn.example.com/show/v.mp4?a=1&b=2');
  });
});

describe('MPD structure', () => {
  test('BaseURLs chain MPD > Period > AdaptationSet > Representation; an absolute one restarts; the first of several wins', () => {
    const text = `<MPD ${NS} mediaPresentationDuration="PT4S"><BaseURL>https://a.example.org/root/</BaseURL>
<BaseURL>https://mirror.example.org/root/</BaseURL>
<Period><BaseURL>p1/</BaseURL>
 <AdaptationSet><BaseURL>video/</BaseURL><Representation id="v"><BaseURL>v.mp4</BaseURL></Representation></AdaptationSet>
 <AdaptationSet><BaseURL>//other.example.net/x/</BaseURL><Representation id="a"><BaseURL>a.mp4</BaseURL></Representation></AdaptationSet>
 <AdaptationSet><Representation id="t"><BaseURL>https://subs.example.com/t.vtt</BaseURL></Representation></AdaptationSet>
</Period></MPD>`;
    const sets = parseMpd(text, URL_).periods[0]!.adaptationSets;
    assert.equal(sets[0]!.representations[0]!.baseUrl, 'https://a.example.org/root/p1/video/v.mp4');
    assert.equal(sets[1]!.representations[0]!.baseUrl, 'https://other.example.net/x/a.mp4');
    assert.equal(sets[2]!.representations[0]!.baseUrl, 'https://subs.example.com/t.vtt');
  });

  test('a BaseURL-only Representation is one segment: the whole resource for the whole period', () => {
    const segs = segmentsOf(
      vod(
        '<AdaptationSet mimeType="video/mp4"><Representation id="v"><BaseURL>v.mp4</BaseURL></Representation></AdaptationSet>',
      ),
    );
    assert.deepEqual(segs, [
      { url: 'https://cdn.example.com/show/v.mp4', range: null, start: 0, duration: 10, number: 1 },
    ]);
  });

  test('periods: explicit start, start from the previous @duration, last duration from mediaPresentationDuration', () => {
    const text = `<MPD ${NS} mediaPresentationDuration="PT60S">
<Period id="a" duration="PT20S"/><Period id="b"/><Period id="c" start="PT45S"/></MPD>`;
    const periods = parseMpd(text, URL_).periods.map((p) => [p.id, p.start, p.duration]);
    assert.deepEqual(periods, [
      ['a', 0, 20],
      ['b', 20, 25],
      ['c', 45, 15],
    ]);
  });

  test('common attributes inherit from the AdaptationSet; kind, frame rate, roles, DRM systems are read', () => {
    const text =
      vod(`<AdaptationSet mimeType="video/mp4" codecs="avc1.64001f" frameRate="30000/1001" lang="en">
<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"/>
<ContentProtection schemeIdUri="urn:uuid:EDEF8BA9-79D6-4ACE-A3C8-27DCD51D21ED"/>
<Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>
<Representation id="v1" bandwidth="800000" width="640" height="360"><BaseURL>v.mp4</BaseURL></Representation></AdaptationSet>
<AdaptationSet contentType="audio"><AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="6"/>
<Representation id="a1" mimeType="audio/mp4" audioSamplingRate="48000" lang="de"/></AdaptationSet>
<AdaptationSet><Representation id="t1" mimeType="application/mp4" codecs="stpp"/></AdaptationSet>`);
    const mpd = parseMpd(text, URL_);
    const [video, audio, text_] = mpd.periods[0]!.adaptationSets;
    const v = video!.representations[0]!;
    assert.deepEqual(
      [v.codecs, v.mimeType, v.lang, v.width, v.protected],
      ['avc1.64001f', 'video/mp4', 'en', 640, true],
    );
    assert.ok(Math.abs(v.frameRate! - 29.97003) < 1e-4);
    assert.deepEqual([video!.kind, audio!.kind, text_!.kind], ['video', 'audio', 'text']);
    assert.deepEqual(video!.roles, ['main']);
    assert.deepEqual(video!.contentProtection, ['cenc', 'widevine']);
    assert.deepEqual(mpd.drmSystems, ['cenc', 'widevine']);
    assert.equal(audio!.representations[0]!.lang, 'de');
    assert.equal(audio!.representations[0]!.audioSamplingRate, 48_000);
    assert.equal(audio!.representations[0]!.protected, false);
    assert.equal(audio!.representations[0]!.audioChannels, 6);
    assert.equal(v.audioChannels, null);
  });
});

describe('segment addressing', () => {
  test('SegmentTemplate@duration: ceil(period / duration) segments, startNumber, %05d, $RepresentationID$, $Bandwidth$, $$', () => {
    const segs = segmentsOf(
      vod(`<AdaptationSet><SegmentTemplate timescale="1000" duration="4000" startNumber="7"
 initialization="$RepresentationID$/init-$Bandwidth$.mp4" media="$RepresentationID$/$Number%05d$-$$.m4s"/>
<Representation id="v" bandwidth="500"/></AdaptationSet>`),
    );
    assert.equal(segs.length, 3);
    assert.deepEqual(segs[0], {
      url: 'https://cdn.example.com/show/v/00007-$.m4s',
      range: null,
      start: 0,
      duration: 4,
      number: 7,
    });
    assert.equal(segs[2]!.duration, 2, 'the last segment ends with the period');
    assert.deepEqual(
      [segs[2]!.url, segs[2]!.start, segs[2]!.number],
      ['https://cdn.example.com/show/v/00009-$.m4s', 8, 9],
    );
    const mpd = parseMpd(
      vod(
        `<AdaptationSet><SegmentTemplate duration="4" initialization="$RepresentationID$/init-$Bandwidth$.mp4" media="x"/><Representation id="v" bandwidth="500"/></AdaptationSet>`,
      ),
      URL_,
    );
    const all = representationSegments(mpd, mpd.periods[0]!, firstRep(mpd));
    assert.equal(all.kind === 'segments' && all.init?.url, 'https://cdn.example.com/show/v/init-500.mp4');
  });

  test('the resolve-once media URL template gives the same URLs as expanding and resolving each segment', () => {
    const templates = [
      '$RepresentationID$/$Number%05d$.m4s',
      '../$Bandwidth$/seg $Time$.m4s?x=$Number$&y=$$',
      'https://Cdn$Number$.Example.com/$Time%08x$.m4s',
      '$$Number$$$Number$',
      '/abs/$RepresentationID$/../$Number$#$Time$',
      'seg-$Unknown$-$Number%5d$-é.m4s',
      'http://[::1/$Number$',
    ];
    for (const template of templates) {
      for (const id of ['v1', 'a b', null, 'x$Number$']) {
        const rep = { id, bandwidth: 800_000 };
        const urlOf = mediaUrlTemplate(template, rep, 'https://cdn.example.com/a/b/manifest.mpd');
        for (const [n, t] of [
          [1, 0],
          [42, 1_234_567],
        ] as const) {
          const slow = resolveUrl(
            expandTemplate(template, { ...rep, number: n, time: t }),
            'https://cdn.example.com/a/b/manifest.mpd',
          );
          assert.equal(urlOf(n, t), slow, `${template} with id ${id}`);
        }
      }
    }
  });

  test('SegmentTimeline: r repeats, $Time$, presentationTimeOffset taken off start', () => {
    const segs = segmentsOf(
      vod(`<AdaptationSet><SegmentTemplate timescale="90000" presentationTimeOffset="900000" media="t/$Time$.m4s">
<SegmentTimeline><S t="900000" d="180000" r="2"/><S d="90000"/></SegmentTimeline></SegmentTemplate>
<Representation id="v"/></AdaptationSet>`),
    );
    assert.deepEqual(
      segs.map((s) => [s.url.split('/').pop(), s.start, s.duration, s.number]),
      [
        ['900000.m4s', 0, 2, 1],
        ['1080000.m4s', 2, 2, 2],
        ['1260000.m4s', 4, 2, 3],
        ['1440000.m4s', 6, 1, 4],
      ],
    );
  });

  test('SegmentTimeline r = -1 repeats up to the next S@t, and up to the period end for the last S', () => {
    const segs = segmentsOf(
      vod(`<AdaptationSet><SegmentTemplate timescale="10" media="$Time$"><SegmentTimeline>
<S t="0" d="20" r="-1"/><S t="50" d="30" r="-1"/></SegmentTimeline></SegmentTemplate><Representation id="v"/></AdaptationSet>`),
    );
    // 0..50 in steps of 20 (3 segments, the last one overlapping the next S), then 50..100 in steps of 30.
    assert.deepEqual(
      segs.map((s) => s.url.split('/').pop()),
      ['0', '20', '40', '50', '80'],
    );
  });

  test('SegmentTemplate inherits from the Period and AdaptationSet attribute by attribute; the Representation overrides', () => {
    const text = `<MPD ${NS} mediaPresentationDuration="PT8S"><Period>
<SegmentTemplate timescale="1000" duration="2000" media="p/$RepresentationID$/$Number$.m4s" startNumber="0"/>
<AdaptationSet><SegmentTemplate duration="4000" initialization="$RepresentationID$-init.mp4"/>
 <Representation id="a"/>
 <Representation id="b"><SegmentTemplate media="b/$Number$.m4s"/></Representation>
</AdaptationSet></Period></MPD>`;
    const mpd = parseMpd(text, URL_);
    const [a, b] = mpd.periods[0]!.adaptationSets[0]!.representations;
    const sa = representationSegments(mpd, mpd.periods[0]!, a!);
    const sb = representationSegments(mpd, mpd.periods[0]!, b!);
    assert.ok(sa.kind === 'segments' && sb.kind === 'segments');
    assert.deepEqual(
      sa.segments.map((s) => s.url.replace('https://cdn.example.com/show/', '')),
      ['p/a/0.m4s', 'p/a/1.m4s'],
    );
    assert.deepEqual(
      sb.segments.map((s) => s.url.replace('https://cdn.example.com/show/', '')),
      ['b/0.m4s', 'b/1.m4s'],
    );
    assert.equal(sb.init?.url, 'https://cdn.example.com/show/b-init.mp4');
  });

  test('SegmentList: SegmentURL media and mediaRange, Initialization sourceURL and range, @duration times', () => {
    const mpd = parseMpd(
      vod(`<AdaptationSet><Representation id="v"><BaseURL>media/v.mp4</BaseURL>
<SegmentList timescale="1000" duration="5000"><Initialization sourceURL="init.mp4" range="0-99"/>
<SegmentURL mediaRange="100-1099"/><SegmentURL media="two.m4s" mediaRange="1100-1999"/></SegmentList></Representation></AdaptationSet>`),
      URL_,
    );
    const segs = representationSegments(mpd, mpd.periods[0]!, firstRep(mpd));
    assert.ok(segs.kind === 'segments');
    assert.deepEqual(segs.init, {
      url: 'https://cdn.example.com/show/media/init.mp4',
      range: { offset: 0, length: 100 },
    });
    assert.deepEqual(segs.segments, [
      {
        url: 'https://cdn.example.com/show/media/v.mp4',
        range: { offset: 100, length: 1000 },
        start: 0,
        duration: 5,
        number: 1,
      },
      {
        url: 'https://cdn.example.com/show/media/two.m4s',
        range: { offset: 1100, length: 900 },
        start: 5,
        duration: 5,
        number: 2,
      },
    ]);
  });

  test('SegmentBase is left to the sidx: kind index with indexRange and the init range', () => {
    const mpd = parseMpd(
      vod(`<AdaptationSet><Representation id="v"><BaseURL>v.mp4</BaseURL>
<SegmentBase indexRange="814-865"><Initialization range="0-813"/></SegmentBase></Representation></AdaptationSet>`),
      URL_,
    );
    assert.deepEqual(representationSegments(mpd, mpd.periods[0]!, firstRep(mpd)), {
      kind: 'index',
      url: 'https://cdn.example.com/show/v.mp4',
      indexRange: { offset: 814, length: 52 },
      init: { url: 'https://cdn.example.com/show/v.mp4', range: { offset: 0, length: 814 } },
      periodDuration: 10,
    });
  });

  test('a live template-number MPD lists the segments available at nowMs within timeShiftBufferDepth', () => {
    const text = `<MPD ${NS} type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z" timeShiftBufferDepth="PT30S" minimumUpdatePeriod="PT2S">
<Period start="PT10S"><AdaptationSet><SegmentTemplate timescale="1" duration="2" startNumber="1" media="$Number$.m4s"/>
<Representation id="v"/></AdaptationSet></Period>
<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://time.example.com/now"/></MPD>`;
    const mpd = parseMpd(text, URL_);
    assert.deepEqual(
      [
        mpd.type,
        mpd.availabilityStartMs,
        mpd.timeShiftBufferDepth,
        mpd.minimumUpdatePeriod,
        mpd.periods[0]!.start,
      ],
      ['dynamic', Date.parse('2026-01-01T00:00:00Z'), 30, 2, 10],
    );
    assert.deepEqual(mpd.utcTimings, [
      { scheme: 'urn:mpeg:dash:utc:http-iso:2014', value: 'https://time.example.com/now' },
    ]);
    const now = Date.parse('2026-01-01T00:01:51Z'); // 101 s after the period start
    const segs = segmentsOf(text, now);
    // Available: segments ending at or before 101 s, i.e. k = 0..49; inside the 30 s window: from k = 35 (70 s).
    assert.deepEqual([segs[0]!.number, segs.at(-1)!.number, segs.length], [36, 50, 15]);
    assert.deepEqual([segs[0]!.start, segs.at(-1)!.start], [70, 98]);
    const early = segmentsOf(text.replace('startNumber="1"', 'availabilityTimeOffset="1.5"'), now);
    assert.equal(
      early.at(-1)!.number,
      51,
      'availabilityTimeOffset makes the next segment available 1.5 s early',
    );
  });

  test('a live SegmentTimeline r = -1 runs up to the last segment complete at nowMs, from the oldest still in timeShiftBufferDepth', () => {
    const text = `<MPD ${NS} type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z">
<Period id="live" start="PT0S"><AdaptationSet><SegmentTemplate timescale="1000" media="$Time$.m4s">
<SegmentTimeline><S t="4000" d="2000" r="-1"/></SegmentTimeline></SegmentTemplate><Representation id="v"/></AdaptationSet></Period></MPD>`;
    const segs = segmentsOf(text, Date.parse('2026-01-01T00:00:10.500Z'));
    // 4..6, 6..8, 8..10 are complete at 10.5 s; 10..12 is still being produced.
    assert.deepEqual(
      segs.map((s) => s.url.split('/').pop()),
      ['4000.m4s', '6000.m4s', '8000.m4s'],
    );
    // With a 4 s timeShiftBufferDepth, 4..6 has left the window at 10.5 s (it ended at 6 < 6.5).
    const windowed = segmentsOf(
      text.replace('type="dynamic"', 'type="dynamic" timeShiftBufferDepth="PT4S"'),
      Date.parse('2026-01-01T00:00:10.500Z'),
    );
    assert.deepEqual(
      windowed.map((s) => [s.url.split('/').pop(), s.number]),
      [
        ['6000.m4s', 2],
        ['8000.m4s', 3],
      ],
    );
  });

  test('each Period of a multi-period MPD has its own segments, timed from its own start', () => {
    const text = `<MPD ${NS} mediaPresentationDuration="PT9S">
<Period id="ad" duration="PT3S"><AdaptationSet><SegmentTemplate duration="2" media="ad/$Number$.m4s"/><Representation id="v"/></AdaptationSet></Period>
<Period id="main"><AdaptationSet><SegmentTemplate duration="2" startNumber="10" media="main/$Number$.m4s"/><Representation id="v"/></AdaptationSet></Period></MPD>`;
    const mpd = parseMpd(text, URL_);
    const [ad, main] = mpd.periods.map((p) =>
      representationSegments(mpd, p, p.adaptationSets[0]!.representations[0]!),
    );
    assert.ok(ad?.kind === 'segments' && main?.kind === 'segments');
    assert.deepEqual(
      ad.segments.map((s) => [s.url.split('show/')[1], s.start]),
      [
        ['ad/1.m4s', 0],
        ['ad/2.m4s', 2],
      ],
    );
    assert.deepEqual(
      main.segments.map((s) => [s.url.split('show/')[1], s.start]),
      [
        ['main/10.m4s', 0],
        ['main/11.m4s', 2],
        ['main/12.m4s', 4],
      ],
    );
    assert.deepEqual([mpd.periods[1]!.start, mpd.periods[1]!.duration], [3, 6]);
  });

  test('a segment URL outside http(s) is NOT_A_PLAYLIST', () => {
    const text = vod(
      '<AdaptationSet><Representation id="v"><BaseURL>file:///etc/passwd</BaseURL></Representation></AdaptationSet>',
    );
    throwsKind(() => segmentsOf(text), 'NOT_A_PLAYLIST', /outside http/);
  });

  test('absurd inputs stop at the segment cap with NOT_A_PLAYLIST', () => {
    const timeline = vod(
      `<AdaptationSet><SegmentTemplate media="$Time$"><SegmentTimeline><S t="0" d="1" r="1000000000"/></SegmentTimeline></SegmentTemplate><Representation id="v"/></AdaptationSet>`,
    );
    throwsKind(() => segmentsOf(timeline), 'NOT_A_PLAYLIST', new RegExp(`limit ${MAX_DASH_SEGMENTS}`));
    const century = vod(
      '<AdaptationSet><SegmentTemplate duration="1" media="$Number$"/><Representation id="v"/></AdaptationSet>',
      'mediaPresentationDuration="P100Y"',
    );
    throwsKind(() => segmentsOf(century), 'NOT_A_PLAYLIST', /limit/);
  });
});

describe('sidx', () => {
  /** Top-level boxes of an MP4 file: [offset, size, type]. */
  function boxes(file: Buffer): [number, number, string][] {
    const out: [number, number, string][] = [];
    for (let at = 0; at + 8 <= file.length; ) {
      const size = file.readUInt32BE(at);
      out.push([at, size, file.toString('latin1', at + 4, at + 8)]);
      at += size;
    }
    return out;
  }

  test('a fragmented MP4 from ffmpeg: each sidx reference is one moof+mdat pair, durations add up to ffprobe’s', async () => {
    const dir = await makeTempDir('sidx');
    const file = path.join(dir, 'frag.mp4');
    await runFfmpeg([
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=64x48:rate=10',
      '-t',
      '4',
      '-c:v',
      'libx264',
      '-g',
      '10',
      '-f',
      'mp4',
      '-movflags',
      '+frag_keyframe+empty_moov+default_base_moof+global_sidx',
      file,
    ]);
    const bytes = await readFile(file);
    const found = findSidx(bytes.subarray(0, 2000), 0);
    assert.equal(found.kind, 'found');
    const { offset, size } = found as { offset: number; size: number };
    const sidx = parseSidx(bytes.subarray(offset, offset + size), offset);
    const list = boxes(bytes);
    const pairs = list.flatMap(([at, sz, type], i) =>
      type === 'moof' && list[i + 1]?.[2] === 'mdat' ? [{ offset: at, length: sz + list[i + 1]![1] }] : [],
    );
    assert.ok(pairs.length >= 2);
    assert.deepEqual(
      sidx.references.map((r) => ({ offset: r.offset, length: r.length })),
      pairs,
    );
    assert.ok(sidx.references.every((r) => r.referenceType === 0 && r.startsWithSap));
    const probed = Number(
      (await runFfprobe(['-show_entries', 'format=duration', '-of', 'csv=p=0', file])).toString(),
    );
    const total = sidx.references.reduce((s, r) => s + r.duration, 0);
    assert.ok(Math.abs(total - probed) < 0.05, `sidx ${total} s vs ffprobe ${probed} s`);
    // The same box rewritten in the other version (0: 32-bit times, 1: 64-bit) reads the same.
    const v1 = otherVersion(bytes.subarray(offset, offset + size));
    assert.notEqual(v1.readUInt8(8), bytes.readUInt8(offset + 8));
    const again = parseSidx(v1, offset);
    assert.deepEqual(
      again.references.map((r) => r.offset - offset),
      sidx.references.map((r) => r.offset - offset + v1.length - size),
    );
    assert.equal(again.timescale, sidx.timescale);
    // Cut short anywhere: a GabeError, never a RangeError.
    for (const cut of [0, 7, 20, size - 1])
      throwsKind(() => parseSidx(bytes.subarray(offset, offset + cut), offset), 'NOT_A_PLAYLIST');
    // A head that ends inside the moov says where to read on.
    assert.deepEqual(findSidx(bytes.subarray(0, 40), 0), {
      kind: 'beyond',
      offset: list[1]![0] + list[1]![1],
    });
  });
});

/**
 * Rewrites a sidx in the other version: 1 (64-bit earliest_presentation_time and first_offset, what
 * ffmpeg 5 writes) to 0 (32-bit), or 0 to 1.
 */
function otherVersion(box: Buffer): Buffer {
  const head = Buffer.from(box.subarray(0, 20));
  const wide = box.readUInt8(8) === 1;
  head.writeUInt8(wide ? 0 : 1, 8);
  const times = Buffer.alloc(wide ? 8 : 16);
  if (wide) {
    times.writeUInt32BE(Number(box.readBigUInt64BE(20)), 0);
    times.writeUInt32BE(Number(box.readBigUInt64BE(28)), 4);
  } else {
    times.writeBigUInt64BE(BigInt(box.readUInt32BE(20)), 0);
    times.writeBigUInt64BE(BigInt(box.readUInt32BE(24)), 8);
  }
  const out = Buffer.concat([head, times, box.subarray(wide ? 36 : 28)]);
  out.writeUInt32BE(out.length, 0);
  return out;
}
