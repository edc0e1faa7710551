/**
 * The MPD seen as the HLS model (playlist/dash/mpd-to-hls.ts, mpd-selection.ts): the master's variants and renditions,
 * selection URLs, the representation chosen in each period, the media playlist of a selection
 * (discontinuities, init sections, msn, target duration), and DRM.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseMpd } from '../../src/playlist/dash/mpd-parser.js';
import { representationSegments } from '../../src/playlist/dash/mpd-segments.js';
import {
  selectionOf,
  selectionTracks,
  selectionUrl,
  withoutFragment,
} from '../../src/playlist/dash/mpd-selection.js';
import {
  dashMediaPlaylist,
  mpdDrm,
  mpdToMaster,
  type PeriodSegments,
} from '../../src/playlist/dash/mpd-to-hls.js';
import { selectAudioRendition, selectVariant } from '../../src/playlist/selection.js';
import { selectSubtitleRenditions } from '../../src/playlist/subtitles.js';

const URL_ = 'https://cdn.example.com/show/manifest.mpd?token=1';
const NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"';

const template = (id: string) =>
  `<SegmentTemplate timescale="1000" duration="2000" startNumber="1" initialization="${id}/init.mp4" media="${id}/$Number$.m4s"/>`;

const video = (reps: [string, number, number][], extra = '') =>
  `<AdaptationSet contentType="video" mimeType="video/mp4">${extra}${reps
    .map(
      ([id, h, bw]) =>
        `<Representation id="${id}" bandwidth="${bw}" width="${(h * 16) / 9}" height="${h}" codecs="avc1.64001f">${template(id)}</Representation>`,
    )
    .join('')}</AdaptationSet>`;

const audio = (id: string, lang: string, extra = '') =>
  `<AdaptationSet contentType="audio" mimeType="audio/mp4" lang="${lang}">${extra}<Representation id="${id}" bandwidth="128000" codecs="mp4a.40.2">${template(id)}</Representation></AdaptationSet>`;

const mpdOf = (periods: string[], attrs = 'type="static" mediaPresentationDuration="PT8S"') =>
  `<?xml version="1.0"?><MPD ${NS} ${attrs}>${periods.join('')}</MPD>`;

const ladder = video([
  ['v720', 720, 3_000_000],
  ['v360', 360, 800_000],
]);

describe('selection URLs', () => {
  test('round-trip through the fragment, which leaves the MPD URL (and its query) as it was', () => {
    const url = selectionUrl(URL_, { kind: 'a', set: 2, rep: 'audio/eng 1' });
    assert.equal(withoutFragment(url), URL_);
    assert.deepEqual(selectionOf(url), { kind: 'a', set: 2, rep: 'audio/eng 1' });
    assert.equal(selectionOf(URL_), null);
    assert.equal(selectionOf('https://h/x.mpd#other'), null);
  });
});

describe('mpdToMaster', () => {
  test('video representations are the variants, audio sets the renditions (Role main is DEFAULT)', () => {
    const mpd = parseMpd(
      mpdOf([
        `<Period id="p0">${ladder}${audio('a-en', 'en')}${audio('a-fr', 'fr', '<Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>')}</Period>`,
      ]),
      URL_,
    );
    const master = mpdToMaster(mpd);
    assert.deepEqual(
      master.variants.map((v) => [v.resolution?.height, v.bandwidth, v.codecs, v.audio]),
      [
        [720, 3_000_000, 'avc1.64001f', 'dash-audio'],
        [360, 800_000, 'avc1.64001f', 'dash-audio'],
      ],
    );
    assert.deepEqual(
      master.renditions.map((r) => [r.type, r.language, r.default]),
      [
        ['AUDIO', 'en', false],
        ['AUDIO', 'fr', true],
      ],
    );
    assert.deepEqual(selectionOf(master.variants[1]!.uri), { kind: 'v', set: 0, rep: 'v360' });
    // The HLS selection functions work on it unchanged.
    const { variant } = selectVariant(master, '360p', null);
    assert.equal(variant.resolution?.height, 360);
    assert.equal(selectAudioRendition(master, variant, 'en')?.language, 'en');
    assert.equal(selectAudioRendition(master, variant)?.language, 'fr');
  });

  test('an audio-only MPD has its audio representations as variants, without renditions', () => {
    const master = mpdToMaster(parseMpd(mpdOf([`<Period>${audio('a', 'en')}</Period>`]), URL_));
    assert.equal(master.variants.length, 1);
    assert.equal(master.variants[0]!.resolution, null);
    assert.equal(master.renditions.length, 0);
  });
});

describe('WebVTT text sets as subtitle renditions', () => {
  const vtt = (id: string, lang: string, extra = '') =>
    `<AdaptationSet mimeType="text/vtt" lang="${lang}">${extra}<Representation id="${id}" bandwidth="256"><BaseURL>${id}.vtt</BaseURL></Representation></AdaptationSet>`;
  const ttml = `<AdaptationSet contentType="text" mimeType="application/mp4" codecs="stpp.ttml.im1t" lang="de"><Representation id="ttml" bandwidth="256"><BaseURL>de.mp4</BaseURL></Representation></AdaptationSet>`;
  const forced = '<Role schemeIdUri="urn:mpeg:dash:role:2011" value="forced-subtitle"/>';
  const mpd = parseMpd(
    mpdOf([
      `<Period id="p0" duration="PT8S">${ladder}${audio('a-en', 'en')}${vtt('s-en', 'en')}${ttml}${vtt('s-fr', 'fr', forced)}</Period>`,
    ]),
    URL_,
  );

  test('each WebVTT set is a SUBTITLES rendition of every variant; TTML and wvtt are not', () => {
    const master = mpdToMaster(mpd);
    assert.ok(master.variants.every((v) => v.subtitles === 'dash-subtitles'));
    const subs = master.renditions.filter((r) => r.type === 'SUBTITLES');
    assert.deepEqual(
      subs.map((r) => [r.language, r.forced, selectionOf(r.uri!)]),
      [
        ['en', false, { kind: 's', set: 2, rep: 's-en' }],
        ['fr', true, { kind: 's', set: 4, rep: 's-fr' }],
      ],
    );
    const { variant } = selectVariant(master, null, null);
    assert.deepEqual(
      selectSubtitleRenditions(master, variant, ['fr']).map((r) => r.language),
      ['fr'],
    );
    // Without text sets, variants name no subtitle group (HLS selection then looks for none).
    const bare = mpdToMaster(parseMpd(mpdOf([`<Period>${ladder}${ttml}</Period>`]), URL_));
    assert.ok(bare.variants.every((v) => v.subtitles === null));
  });

  test("a text set's one file (BaseURL only) is one segment over the period, without init", () => {
    const [track] = selectionTracks(mpd, { kind: 's', set: 2, rep: 's-en' });
    assert.equal(track?.set.lang, 'en');
    const found = representationSegments(mpd, track!.period, track!.rep);
    assert.equal(found.kind, 'segments');
    const media = dashMediaPlaylist(mpd, [found as PeriodSegments]);
    assert.deepEqual(
      media.segments.map((x) => [x.resolvedUri, x.duration, x.map]),
      [['https://cdn.example.com/show/s-en.vtt', 8, null]],
    );
  });
});

describe('selectionTracks over several periods', () => {
  test('the same @id in every period, else the closest rung of the set at the same position', () => {
    const other = video([
      ['ad-hi', 720, 2_500_000],
      ['ad-lo', 360, 700_000],
    ]);
    const mpd = parseMpd(
      mpdOf([
        `<Period id="a">${ladder}</Period>`,
        `<Period id="b">${other}</Period>`,
        `<Period id="c">${ladder}</Period>`,
      ]),
      URL_,
    );
    const tracks = selectionTracks(mpd, { kind: 'v', set: 0, rep: 'v360' });
    assert.deepEqual(
      tracks.map((t) => [t.period.id, t.rep.id]),
      [
        ['a', 'v360'],
        ['b', 'ad-lo'],
        ['c', 'v360'],
      ],
    );
    assert.deepEqual(selectionTracks(mpd, { kind: 'v', set: 0, rep: 'gone' }), []);
  });

  test('an audio selection keeps its language in a period that orders its sets differently', () => {
    const mpd = parseMpd(
      mpdOf([
        `<Period id="a">${ladder}${audio('en1', 'en')}${audio('fr1', 'fr')}</Period>`,
        `<Period id="b">${ladder}${audio('fr2', 'fr')}${audio('en2', 'en')}</Period>`,
      ]),
      URL_,
    );
    const tracks = selectionTracks(mpd, { kind: 'a', set: 2, rep: 'fr1' });
    assert.deepEqual(
      tracks.map((t) => t.rep.id),
      ['fr1', 'fr2'],
    );
  });
});

describe('dashMediaPlaylist', () => {
  const twoPeriods = parseMpd(
    mpdOf(
      [
        `<Period id="a" duration="PT4S">${ladder}</Period>`,
        `<Period id="b" duration="PT4S">${ladder}</Period>`,
      ],
      'type="static" mediaPresentationDuration="PT8S"',
    ),
    URL_,
  );

  function partsOf(mpd: typeof twoPeriods, rep: string): PeriodSegments[] {
    return selectionTracks(mpd, { kind: 'v', set: 0, rep }).map((t) => {
      const r = representationSegments(mpd, t.period, t.rep, { nowMs: 0 });
      assert.equal(r.kind, 'segments');
      return r as PeriodSegments;
    });
  }

  test('periods in order; each later period starts a discontinuity with its own init; VOD with ENDLIST', () => {
    const media = dashMediaPlaylist(twoPeriods, partsOf(twoPeriods, 'v720'));
    assert.equal(media.segments.length, 4);
    assert.deepEqual(
      media.segments.map((s) => [s.discontinuity, s.discontinuitySequence, s.msn, s.duration]),
      [
        [false, 0, 0, 2],
        [false, 0, 1, 2],
        [true, 1, 2, 2],
        [false, 1, 3, 2],
      ],
    );
    assert.equal(media.segments[0]!.resolvedUri, 'https://cdn.example.com/show/v720/1.m4s');
    assert.equal(media.segments[0]!.map?.resolvedUri, 'https://cdn.example.com/show/v720/init.mp4');
    assert.equal(media.endlist, true);
    assert.equal(media.playlistType, 'VOD');
    assert.equal(media.targetDuration, 2);
  });

  test('one period: msn is $Number$, so a live MPD reloaded later names the same segments the same', () => {
    const mpd = parseMpd(
      mpdOf(
        [`<Period id="a" start="PT0S">${ladder}</Period>`],
        'type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" minimumUpdatePeriod="PT5S" timeShiftBufferDepth="PT6S"',
      ),
      URL_,
    );
    const at = (nowMs: number) => {
      const [t] = selectionTracks(mpd, { kind: 'v', set: 0, rep: 'v360' });
      const r = representationSegments(mpd, t!.period, t!.rep, { nowMs });
      return dashMediaPlaylist(mpd, [r as PeriodSegments]);
    };
    const first = at(10_000);
    const later = at(14_000);
    assert.equal(first.endlist, false);
    assert.equal(first.playlistType, null);
    const byUri = new Map(first.segments.map((s) => [s.uri, s.msn]));
    for (const s of later.segments) if (byUri.has(s.uri)) assert.equal(s.msn, byUri.get(s.uri), s.uri);
    assert.ok(later.segments.at(-1)!.msn > first.segments.at(-1)!.msn, 'the window moved on');
    // Paced by a third of the 6 s timeShiftBufferDepth, not the 5 s minimumUpdatePeriod: nothing
    // leaves the window between two reloads.
    assert.equal(first.targetDuration, 2);
  });

  test('a live MPD is paced by minimumUpdatePeriod when it is longer than a segment and the window allows', () => {
    const mpd = parseMpd(
      mpdOf(
        [`<Period id="a" start="PT0S">${ladder}</Period>`],
        'type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" minimumUpdatePeriod="PT5S" timeShiftBufferDepth="PT60S"',
      ),
      URL_,
    );
    const [t] = selectionTracks(mpd, { kind: 'v', set: 0, rep: 'v360' });
    const r = representationSegments(mpd, t!.period, t!.rep, { nowMs: 30_000 });
    // 2 s segments, updates every 5 s: 3 unchanged reloads of a 2 s target would call it stalled.
    assert.equal(dashMediaPlaylist(mpd, [r as PeriodSegments]).targetDuration, 5);
  });
});

describe('mpdDrm', () => {
  test('names the systems of ContentProtection on a video or audio set; null when clear', () => {
    const cp =
      '<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"/>' +
      '<ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"/>';
    const drm = mpdDrm(parseMpd(mpdOf([`<Period>${video([['v', 360, 1]], cp)}</Period>`]), URL_));
    assert.ok(drm);
    assert.match(drm, /cenc/i);
    assert.match(drm, /widevine/i);
    assert.equal(mpdDrm(parseMpd(mpdOf([`<Period>${ladder}</Period>`]), URL_)), null);
  });
});
