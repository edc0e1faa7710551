import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MasterPlaylist } from '../../src/playlist/model.js';
import { parsePlaylist } from '../../src/playlist/parser.js';
import {
  formatResolution,
  parseResolutionPreference,
  RESOLUTION_PREFERENCE_PATTERN,
  selectAudioRendition,
  selectVariant,
} from '../../src/playlist/selection.js';
import { GabeError } from '../../src/service/errors.js';

function master(...lines: string[]): MasterPlaylist {
  const p = parsePlaylist(['#EXTM3U', ...lines].join('\n'));
  assert.equal(p.kind, 'master');
  return p as MasterPlaylist;
}

/** A variant line pair; `res` may be null for no RESOLUTION. */
const v = (uri: string, bandwidth: number, res: string | null, extra = ''): string =>
  `#EXT-X-STREAM-INF:BANDWIDTH=${bandwidth}${res ? `,RESOLUTION=${res}` : ''}${extra}\n${uri}`;

function throwsKind(fn: () => unknown, kind: string): void {
  assert.throws(fn, (err: unknown) => err instanceof GabeError && err.kind === kind);
}

const ladder = master(
  v('360.m3u8', 800_000, '640x360'),
  v('480.m3u8', 1_400_000, '854x480'),
  v('720.m3u8', 2_800_000, '1280x720'),
  v('1080.m3u8', 5_000_000, '1920x1080'),
  '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=9000000,RESOLUTION=3840x2160,URI="iframes.m3u8"',
);
const pick = (wanted: string | null | undefined, def: string | null = null, m = ladder): string =>
  selectVariant(m, wanted, def).variant.uri;

describe('parseResolutionPreference', () => {
  test('accepts WxH, HEIGHTp, best and worst', () => {
    assert.deepEqual(parseResolutionPreference('1280x720'), { kind: 'size', width: 1280, height: 720 });
    assert.deepEqual(parseResolutionPreference('720p'), { kind: 'height', height: 720 });
    assert.deepEqual(parseResolutionPreference('best'), { kind: 'best' });
    assert.deepEqual(parseResolutionPreference('worst'), { kind: 'worst' });
  });

  for (const bad of [
    '',
    '720',
    '1280x',
    'x720',
    '1280*720',
    '0p',
    '-1p',
    ' 720p',
    '720P',
    'Best',
    '1280x720p',
    '999999p',
  ]) {
    test(`rejects ${JSON.stringify(bad)} with VALIDATION`, () => {
      throwsKind(() => parseResolutionPreference(bad), 'VALIDATION');
    });
  }

  test('the exported pattern accepts exactly what the parser accepts (usable in a JSON schema)', () => {
    const re = new RegExp(RESOLUTION_PREFERENCE_PATTERN);
    for (const s of ['1280x720', '720p', 'best', 'worst']) assert.ok(re.test(s), s);
    for (const s of ['720', 'Best', '1280X720 ', '']) assert.ok(!re.test(s), s);
  });
});

describe('selectVariant', () => {
  test('WxH picks the exact match', () => {
    assert.equal(pick('1280x720'), '720.m3u8');
  });

  test('WxH without exact match picks the largest area not exceeding it', () => {
    assert.equal(pick('1000x600'), '480.m3u8');
    assert.match(selectVariant(ladder, '1000x600', null).reason, /closest below/);
  });

  test('WxH smaller than every variant picks the smallest area above it', () => {
    assert.equal(pick('320x180'), '360.m3u8');
    assert.match(selectVariant(ladder, '320x180', null).reason, /closest above/);
  });

  test('HEIGHTp matches by height: exact, else closest below, else closest above', () => {
    assert.equal(pick('720p'), '720.m3u8');
    assert.equal(pick('1000p'), '720.m3u8');
    assert.equal(pick('240p'), '360.m3u8');
    assert.equal(pick('4320p'), '1080.m3u8');
  });

  test('best and worst go by bandwidth; I-frame variants never count', () => {
    assert.equal(pick('best'), '1080.m3u8');
    assert.equal(pick('worst'), '360.m3u8');
  });

  test('ties at the same resolution go to the highest bandwidth', () => {
    const m = master(
      v('a.m3u8', 1_000_000, '1280x720'),
      v('b.m3u8', 3_000_000, '1280x720'),
      v('c.m3u8', 2_000_000, '1280x720'),
    );
    assert.equal(pick('1280x720', null, m), 'b.m3u8');
    assert.equal(pick('720p', null, m), 'b.m3u8');
    assert.equal(pick('1920x1080', null, m), 'b.m3u8');
  });

  test('nothing wanted uses default_resolution with the same rules', () => {
    assert.equal(pick(null, '480p'), '480.m3u8');
    assert.equal(pick(undefined, '900x500'), '480.m3u8');
    assert.match(selectVariant(ladder, null, '480p').reason, /default_resolution/);
  });

  test('a wanted resolution overrides default_resolution', () => {
    assert.equal(pick('1080p', '360p'), '1080.m3u8');
  });

  test('nothing wanted and no default picks the highest bandwidth', () => {
    assert.equal(pick(null, null), '1080.m3u8');
  });

  test('a malformed default_resolution is a VALIDATION error too', () => {
    throwsKind(() => selectVariant(ladder, null, 'hd'), 'VALIDATION');
  });

  test('variants without RESOLUTION are ignored for WxH when others declare one', () => {
    const m = master(v('nores.m3u8', 9_000_000, null), v('360.m3u8', 800_000, '640x360'));
    assert.equal(pick('1920x1080', null, m), '360.m3u8');
    assert.equal(pick('best', null, m), 'nores.m3u8');
  });

  test('when no variant declares RESOLUTION, WxH and HEIGHTp fall back to the highest bandwidth', () => {
    const m = master(v('lo.m3u8', 100, null), v('hi.m3u8', 900, null), v('mid.m3u8', 500, null));
    assert.equal(pick('1280x720', null, m), 'hi.m3u8');
    assert.equal(pick('720p', null, m), 'hi.m3u8');
    assert.equal(pick('worst', null, m), 'lo.m3u8');
  });

  test('audio-only variants are not picked while video variants exist', () => {
    const m = master(v('audio.m3u8', 64_000, null, ',CODECS="mp4a.40.5"'), v('360.m3u8', 800_000, '640x360'));
    assert.equal(pick('worst', null, m), '360.m3u8');
    const audioOnly = master(
      v('a1.m3u8', 64_000, null, ',CODECS="mp4a.40.5"'),
      v('a2.m3u8', 128_000, null, ',CODECS="mp4a.40.2"'),
    );
    assert.equal(pick(null, null, audioOnly), 'a2.m3u8');
  });

  test('a master without playable variants is NO_VARIANT, even with I-frame variants', () => {
    throwsKind(
      () => selectVariant(master('#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="i.m3u8"'), null, null),
      'NO_VARIANT',
    );
    throwsKind(
      () => selectVariant(master('#EXT-X-SESSION-DATA:DATA-ID="x",VALUE="y"'), 'best', null),
      'NO_VARIANT',
    );
  });
});

describe('selectAudioRendition', () => {
  const audio = (name: string, lang: string, uri: string | null, dflt = false): string =>
    `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="${name}",LANGUAGE="${lang}"${dflt ? ',DEFAULT=YES' : ''}${uri ? `,URI="${uri}"` : ''}`;

  test('prefers the requested language, matching en to en-US', () => {
    const m = master(
      audio('English', 'en-US', 'en.m3u8', true),
      audio('Deutsch', 'de', 'de.m3u8'),
      v('v.m3u8', 1, null, ',AUDIO="aud"'),
    );
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'de')?.uri, 'de.m3u8');
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'EN')?.uri, 'en.m3u8');
  });

  test('matches a two-letter language to the ISO 639-2 code DASH packagers write, and back; regions stay exact', () => {
    const m = master(
      audio('English', 'eng', 'en.m3u8', true),
      audio('French', 'fre', 'fr.m3u8'),
      audio('Portuguese', 'pt-PT', 'pt.m3u8'),
      v('v.m3u8', 1, null, ',AUDIO="aud"'),
    );
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'fr')?.uri, 'fr.m3u8');
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'fra')?.uri, 'fr.m3u8');
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'pt')?.uri, 'pt.m3u8');
    // pt-BR is not pt-PT: the DEFAULT rendition, not a guess.
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'pt-BR')?.uri, 'en.m3u8');
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'xx')?.uri, 'en.m3u8');
  });

  test('without a language (or with an unknown one) takes DEFAULT=YES, else the first with a URI', () => {
    const m = master(
      audio('Deutsch', 'de', 'de.m3u8'),
      audio('English', 'en', 'en.m3u8', true),
      v('v.m3u8', 1, null, ',AUDIO="aud"'),
    );
    assert.equal(selectAudioRendition(m, m.variants[0]!)?.uri, 'en.m3u8');
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'fr')?.uri, 'en.m3u8');
    const noDefault = master(
      audio('Deutsch', 'de', 'de.m3u8'),
      audio('English', 'en', 'en.m3u8'),
      v('v.m3u8', 1, null, ',AUDIO="aud"'),
    );
    assert.equal(selectAudioRendition(noDefault, noDefault.variants[0]!)?.uri, 'de.m3u8');
  });

  test('is null when no rendition of the group has a URI (audio muxed into the variant)', () => {
    const m = master(audio('English', 'en', null, true), v('v.m3u8', 1, null, ',AUDIO="aud"'));
    assert.equal(selectAudioRendition(m, m.variants[0]!), null);
  });

  test('is null when the DEFAULT rendition is the muxed one, rather than another language', () => {
    const m = master(
      audio('English', 'en', null, true),
      audio('Français', 'fr', 'fr.m3u8'),
      v('v.m3u8', 1, null, ',AUDIO="aud"'),
    );
    assert.equal(selectAudioRendition(m, m.variants[0]!), null);
    assert.equal(selectAudioRendition(m, m.variants[0]!, 'fr')?.uri, 'fr.m3u8');
  });

  test('is null for a variant without an AUDIO group', () => {
    const m = master(audio('English', 'en', 'en.m3u8', true), v('v.m3u8', 1, null));
    assert.equal(selectAudioRendition(m, m.variants[0]!), null);
  });
});

test('formatResolution gives WxH or null', () => {
  assert.equal(formatResolution(ladder.variants[2]!), '1280x720');
  assert.equal(formatResolution({ resolution: null }), null);
});
