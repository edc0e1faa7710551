import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isLive } from '../../src/pipeline/hls/renditions.js';
import { formatInfoTable, toInfoJson } from '../../src/playlist/info.js';
import type { MasterPlaylist, MediaPlaylist, Playlist } from '../../src/playlist/model.js';
import {
  assertDownloadable,
  detectDrm,
  effectiveIv,
  parseIv,
  parsePlaylist,
} from '../../src/playlist/parser.js';
import { GabeError } from '../../src/service/errors.js';

const m3u8 = (...lines: string[]): string => lines.join('\n');

function media(text: string, base?: string): MediaPlaylist {
  const p = parsePlaylist(text, base);
  assert.equal(p.kind, 'media');
  return p as MediaPlaylist;
}

function master(text: string, base?: string): MasterPlaylist {
  const p = parsePlaylist(text, base);
  assert.equal(p.kind, 'master');
  return p as MasterPlaylist;
}

function throwsKind(fn: () => unknown, kind: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof GabeError, `expected a GabeError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const vod = (...body: string[]): string =>
  m3u8('#EXTM3U', '#EXT-X-TARGETDURATION:10', ...body, '#EXT-X-ENDLIST');

describe('URI resolution', () => {
  // The base is the final URL after redirects: another host, a deeper path and a signed query.
  const base = 'https://cdn2.example.net/v/1080/index.m3u8?token=abc';
  const p = media(
    vod(
      '#EXT-X-KEY:METHOD=AES-128,URI="../keys/k1.bin"',
      '#EXT-X-MAP:URI="init.mp4?sig=1"',
      '#EXTINF:4,',
      'seg0.ts',
      '#EXTINF:4,',
      '../audio/seg1.ts?part=2&x=%20',
      '#EXTINF:4,',
      '/root/seg2.ts',
      '#EXTINF:4,',
      '//other.example.org/seg3.ts',
      '#EXTINF:4,',
      'https://abs.example.com/seg4.ts?sig=xyz',
    ),
    base,
  );

  test('relative URIs resolve against the redirected base and do not inherit its query', () => {
    assert.deepEqual(
      p.segments.map((s) => s.resolvedUri),
      [
        'https://cdn2.example.net/v/1080/seg0.ts',
        'https://cdn2.example.net/v/audio/seg1.ts?part=2&x=%20',
        'https://cdn2.example.net/root/seg2.ts',
        'https://other.example.org/seg3.ts',
        'https://abs.example.com/seg4.ts?sig=xyz',
      ],
    );
  });

  test('the URI as written is kept next to the resolved one', () => {
    assert.equal(p.segments[1]?.uri, '../audio/seg1.ts?part=2&x=%20');
    assert.equal(p.baseUrl, base);
  });

  test('key and init section URIs resolve against the same base', () => {
    assert.equal(p.segments[0]?.keys[0]?.resolvedUri, 'https://cdn2.example.net/v/keys/k1.bin');
    assert.equal(p.segments[0]?.map?.resolvedUri, 'https://cdn2.example.net/v/1080/init.mp4?sig=1');
  });

  test('without a base no resolvedUri is invented', () => {
    const q = media(vod('#EXTINF:4,', 'seg0.ts'));
    assert.equal(q.segments[0]?.resolvedUri, undefined);
    assert.equal('resolved_uri' in (toInfoJson(q, false) as { segments: object[] }).segments[0]!, false);
  });

  test('spaces and non-ASCII come out percent-encoded, as they go on the wire', () => {
    const q = media(vod('#EXTINF:4,', 'my seg\u3000x.ts'), 'http://h.example/a/b.m3u8');
    assert.equal(q.segments[0]?.uri, 'my seg\u3000x.ts');
    assert.equal(q.segments[0]?.resolvedUri, 'http://h.example/a/my%20seg%E3%80%80x.ts');
  });

  test('an invalid base URL is an INVALID_URL error', () => {
    throwsKind(() => parsePlaylist(vod('#EXTINF:4,', 'a.ts'), 'not a url'), 'INVALID_URL');
  });
});

describe('media segments', () => {
  test('EXT-X-BYTERANGE without offset continues after the previous sub-range', () => {
    const p = media(
      vod(
        '#EXT-X-MAP:URI="main.mp4",BYTERANGE="720@0"',
        '#EXTINF:4,',
        '#EXT-X-BYTERANGE:1000@720',
        'main.mp4',
        '#EXTINF:4,',
        '#EXT-X-BYTERANGE:500',
        'main.mp4',
        '#EXTINF:4,',
        '#EXT-X-BYTERANGE:250',
        'main.mp4',
      ),
    );
    assert.deepEqual(
      p.segments.map((s) => s.byterange),
      [
        { length: 1000, offset: 720 },
        { length: 500, offset: 1720 },
        { length: 250, offset: 2220 },
      ],
    );
    assert.deepEqual(p.segments[0]?.map?.byterange, { length: 720, offset: 0 });
  });

  test('an unreadable byte range is NOT_A_PLAYLIST rather than a silent whole-file fetch', () => {
    throwsKind(
      () => parsePlaylist(vod('#EXTINF:4,', '#EXT-X-BYTERANGE:12x@3', 'a.ts')),
      'NOT_A_PLAYLIST',
      /byte range/,
    );
    throwsKind(
      () => parsePlaylist(vod('#EXT-X-MAP:URI="i.mp4",BYTERANGE="-5"', '#EXTINF:4,', 'a.ts')),
      'NOT_A_PLAYLIST',
    );
  });

  test('key rotation applies each key to the following segments and METHOD=NONE clears them', () => {
    const p = media(
      vod(
        '#EXTINF:4,',
        'clear.ts',
        '#EXT-X-KEY:METHOD=AES-128,URI="k1"',
        '#EXTINF:4,',
        'a.ts',
        '#EXT-X-KEY:METHOD=AES-128,URI="k2",IV=0X0102',
        '#EXTINF:4,',
        'b.ts',
        '#EXT-X-KEY:METHOD=NONE',
        '#EXTINF:4,',
        'c.ts',
      ),
    );
    assert.deepEqual(
      p.segments.map((s) => s.keys.map((k) => `${k.method} ${k.uri} ${k.iv}`)),
      [[], ['AES-128 k1 null'], ['AES-128 k2 0X0102'], []],
    );
    assert.equal(p.segments[1]?.keys[0]?.keyformat, 'identity');
  });

  test('keys of different KEYFORMATs apply together and a new key replaces only its own format', () => {
    const p = media(
      vod(
        '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://a",KEYFORMAT="com.apple.streamingkeydelivery"',
        '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="data:,w1",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"',
        '#EXTINF:4,',
        'a.ts',
        '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://b",KEYFORMAT="com.apple.streamingkeydelivery"',
        '#EXTINF:4,',
        'b.ts',
      ),
    );
    assert.deepEqual(
      p.segments.map((s) => s.keys.map((k) => k.uri)),
      [
        ['skd://a', 'data:,w1'],
        ['skd://b', 'data:,w1'],
      ],
    );
  });

  test('the default IV is the media sequence number as a 16-byte big-endian value', () => {
    const p = media(
      vod(
        '#EXT-X-MEDIA-SEQUENCE:7794',
        '#EXT-X-KEY:METHOD=AES-128,URI="k"',
        '#EXTINF:4,',
        'a.ts',
        '#EXTINF:4,',
        'b.ts',
      ),
    );
    assert.equal(p.segments[0]?.keys[0]?.iv, null);
    assert.equal(effectiveIv(p.segments[0]!).toString('hex'), '00000000000000000000000000001e72');
    assert.equal(effectiveIv(p.segments[1]!).toString('hex'), '00000000000000000000000000001e73');
  });

  test('an explicit IV is used as written, short values left-padded, garbage rejected as KEY', () => {
    const p = media(
      vod('#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0x0000000000000000000000000000ABCD', '#EXTINF:4,', 'a.ts'),
    );
    assert.equal(effectiveIv(p.segments[0]!).toString('hex'), '0000000000000000000000000000abcd');
    assert.equal(parseIv('0x02').toString('hex'), '00000000000000000000000000000002');
    throwsKind(() => parseIv('0xZZ'), 'KEY');
    throwsKind(() => parseIv(`0x${'1'.repeat(33)}`), 'KEY');
  });

  test('EXT-X-MAP changes apply from the next segment and remember the key in effect at the tag', () => {
    const p = media(
      vod(
        '#EXT-X-KEY:METHOD=AES-128,URI="k1",IV=0x01',
        '#EXT-X-MAP:URI="init1.mp4"',
        '#EXT-X-KEY:METHOD=NONE',
        '#EXTINF:4,',
        'a.m4s',
        '#EXT-X-MAP:URI="init2.mp4",BYTERANGE="100@50"',
        '#EXTINF:4,',
        'b.m4s',
      ),
    );
    assert.deepEqual(
      p.segments.map((s) => [s.map?.uri, s.map?.byterange, s.map?.keys.length, s.keys.length]),
      [
        ['init1.mp4', null, 1, 0],
        ['init2.mp4', { length: 100, offset: 50 }, 0, 0],
      ],
    );
  });

  test('msn counts from MEDIA-SEQUENCE plus skipped segments; discontinuities raise the sequence', () => {
    const p = media(
      m3u8(
        '#EXTM3U',
        '#EXT-X-TARGETDURATION:4',
        '#EXT-X-MEDIA-SEQUENCE:100',
        '#EXT-X-DISCONTINUITY-SEQUENCE:7',
        '#EXT-X-SKIP:SKIPPED-SEGMENTS=3',
        '#EXTINF:4,',
        'a.ts',
        '#EXT-X-DISCONTINUITY',
        '#EXTINF:4,',
        'b.ts',
      ),
    );
    assert.deepEqual(
      p.segments.map((s) => [s.msn, s.discontinuity, s.discontinuitySequence]),
      [
        [103, false, 7],
        [104, true, 8],
      ],
    );
  });

  test('EXT-X-DEFINE variables are substituted in URIs and attributes, QUERYPARAM and IMPORT included', () => {
    const text = m3u8(
      '#EXTM3U',
      '#EXT-X-DEFINE:NAME="host",VALUE="cdn.example.com"',
      '#EXT-X-DEFINE:NAME="path",VALUE="https://{$host}/v"',
      '#EXT-X-DEFINE:QUERYPARAM="token"',
      '#EXT-X-DEFINE:IMPORT="auth"',
      '#EXT-X-TARGETDURATION:4',
      '#EXT-X-KEY:METHOD=AES-128,URI="{$path}/key?t={$token}"',
      '#EXTINF:4,',
      '{$path}/a.ts?t={$token}&a={$auth}&u={$undefined}',
      '#EXT-X-ENDLIST',
    );
    const p = parsePlaylist(text, 'https://origin.example/p.m3u8?token=T0K', { imports: { auth: 'A1' } });
    assert.equal(p.kind, 'media');
    const s = (p as MediaPlaylist).segments[0]!;
    // An undefined variable is left as written rather than failing the whole playlist.
    assert.equal(s.uri, 'https://cdn.example.com/v/a.ts?t=T0K&a=A1&u={$undefined}');
    assert.equal(s.keys[0]?.uri, 'https://cdn.example.com/v/key?t=T0K');
  });

  test('EXT-X-GAP segments stay in the model, flagged, so counts and msn stay right', () => {
    const p = media(vod('#EXTINF:4,', 'a.ts', '#EXTINF:4,', '#EXT-X-GAP', 'b.ts', '#EXTINF:4,', 'c.ts'));
    assert.deepEqual(
      p.segments.map((s) => [s.uri, s.gap, s.msn]),
      [
        ['a.ts', false, 0],
        ['b.ts', true, 1],
        ['c.ts', false, 2],
      ],
    );
  });

  test('a negative or unreadable EXTINF and a URI without EXTINF give a null (unknown) duration', () => {
    const p = media(vod('#EXTINF:-1,Live', 'a.ts', '#EXTINF:abc,', 'b.ts', 'c.ts', '#EXTINF:.5', 'd.ts'));
    assert.deepEqual(
      p.segments.map((s) => s.duration),
      [null, null, null, 0.5],
    );
    assert.equal((toInfoJson(p, false) as { total_duration: unknown }).total_duration, null);
  });

  test('a trailing EXTINF without URI line does not create a segment', () => {
    const p = media(m3u8('#EXTM3U', '#EXT-X-TARGETDURATION:4', '#EXTINF:4,', 'a.ts', '#EXTINF:4,'));
    assert.equal(p.segments.length, 1);
  });
});

describe('leniency and rejection', () => {
  const body = ['#EXT-X-TARGETDURATION:4', '#EXTINF:4,', 'a.ts', '#EXT-X-ENDLIST'];

  test('BOM, CRLF, blank lines, stray blanks and a comment before #EXTM3U are accepted', () => {
    const text = `\uFEFF# generated\r\n\r\n  #EXTM3U  \r\n${body.map((l) => `${l} \t`).join('\r\n\r\n')}\r\n`;
    const p = media(text);
    assert.deepEqual(
      p.segments.map((s) => [s.uri, s.duration]),
      [['a.ts', 4]],
    );
    assert.equal(p.endlist, true);
  });

  test('CR-only line endings and a missing #EXTM3U header are accepted when HLS tags are present', () => {
    assert.equal(media(body.join('\r')).segments.length, 1);
  });

  test('a Latin-1 playlist decoded as UTF-8 (U+FFFD in titles) is still a playlist', () => {
    const title = 'Fran\uFFFDais, \uFFFDt\uFFFD, \uFFFDl\uFFFDve, d\uFFFDj\uFFFD';
    const p = media(vod(`#EXTINF:4,${title}`, 'a.ts'));
    assert.equal(p.segments[0]?.title, title);
  });

  const notPlaylists: [string, string, RegExp][] = [
    ['an HTML page', '<!DOCTYPE html>\n<html><body>404</body></html>', /HTML page/],
    ['a JSON body', '{"error":"forbidden"}', /JSON/],
    ['binary data', '\u0000\u0000\u0000\u0018ftypmp42\u0000\u0000\u0000\u0000mp42isom', /binary/],
    ['an MPEG-TS packet decoded as text', 'G@\u0011\u0010\u0000B\uFFFD\uFFFD\u0001\uFFFD', /binary/],
    ['an empty body', '', /empty/],
    ['a whitespace-only body', ' \r\n\t\n', /empty/],
    ['a DASH manifest', '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">', /DASH/],
    ['a plain list of links', 'http://example.com/a.ts\nhttp://example.com/b.ts', /#EXTM3U/],
    ['comments only', '# nothing\n# here', /#EXTM3U/],
  ];
  for (const [what, text, message] of notPlaylists) {
    test(`${what} is NOT_A_PLAYLIST with a clear message`, () => {
      throwsKind(() => parsePlaylist(text), 'NOT_A_PLAYLIST', message);
    });
  }

  test('random garbage never hangs and only ever throws GabeError', () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pieces = [
      '#EXTM3U',
      '#EXTINF:',
      '#EXT-X-KEY:',
      'METHOD=',
      '"',
      ',',
      '=',
      '@',
      '\n',
      'x',
      '{$',
      '}',
      '#EXT-X-',
    ];
    const extra = [
      '#EXT-X-STREAM-INF:',
      '#EXT-X-BYTERANGE:',
      '#EXT-X-MAP:URI=',
      '9',
      '-',
      '\r',
      ' ',
      '\u0000',
    ];
    const all = [...pieces, ...extra];
    for (let i = 0; i < 2000; i++) {
      let text = i % 2 === 0 ? '#EXTM3U\n' : '';
      for (let j = rand(200); j > 0; j--) text += all[rand(all.length)];
      try {
        const p = parsePlaylist(text, 'http://example.com/x.m3u8');
        toInfoJson(p, true);
        formatInfoTable(p);
      } catch (err) {
        assert.ok(err instanceof GabeError, `non-GabeError on ${JSON.stringify(text)}: ${String(err)}`);
      }
    }
  });
});

describe('limits', () => {
  test('more segments than maxSegments is PLAYLIST_TOO_LARGE', () => {
    const text = vod(...Array.from({ length: 11 }, (_, i) => `#EXTINF:1,\ns${i}.ts`));
    assert.equal(media(text).segments.length, 11);
    throwsKind(
      () => parsePlaylist(text, undefined, { maxSegments: 10 }),
      'PLAYLIST_TOO_LARGE',
      /10 segments/,
    );
  });

  test('a master with more entries than maxSegments is PLAYLIST_TOO_LARGE', () => {
    const text = m3u8(
      '#EXTM3U',
      ...Array.from({ length: 5 }, (_, i) => `#EXT-X-STREAM-INF:BANDWIDTH=${i}\nv${i}.m3u8`),
    );
    throwsKind(() => parsePlaylist(text, undefined, { maxSegments: 4 }), 'PLAYLIST_TOO_LARGE');
  });

  test('a playlist over maxBytes (counted in UTF-8 bytes) is PLAYLIST_TOO_LARGE', () => {
    const text = vod('#EXTINF:1,', `${'é'.repeat(600)}.ts`);
    assert.equal(media(text, undefined).segments.length, 1);
    throwsKind(() => parsePlaylist(text, undefined, { maxBytes: 1000 }), 'PLAYLIST_TOO_LARGE', /1000 bytes/);
  });
});

describe('DRM and downloadability', () => {
  const drmCases: [string, string, string][] = [
    ['FairPlay by skd:// URI', 'METHOD=SAMPLE-AES,URI="skd://k"', 'FairPlay'],
    [
      'FairPlay by KEYFORMAT',
      'METHOD=AES-128,URI="k",KEYFORMAT="com.apple.streamingkeydelivery"',
      'FairPlay',
    ],
    [
      'Widevine',
      'METHOD=SAMPLE-AES-CTR,URI="data:,x",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"',
      'Widevine',
    ],
    ['PlayReady by name', 'METHOD=SAMPLE-AES,URI="data:,x",KEYFORMAT="com.microsoft.playready"', 'PlayReady'],
    [
      'PlayReady by UUID',
      'METHOD=SAMPLE-AES-CTR,URI="data:,x",KEYFORMAT="urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95"',
      'PlayReady',
    ],
    ['SAMPLE-AES with an identity key', 'METHOD=SAMPLE-AES,URI="k"', 'SAMPLE-AES'],
    ['SAMPLE-AES-CTR with an identity key', 'METHOD=SAMPLE-AES-CTR,URI="k"', 'SAMPLE-AES-CTR'],
  ];
  for (const [name, attrs, drm] of drmCases) {
    test(`${name} is detected as DRM and assertDownloadable throws DRM`, () => {
      const p = media(vod(`#EXT-X-KEY:${attrs}`, '#EXTINF:4,', 'a.ts'));
      assert.equal(detectDrm(p), drm);
      throwsKind(() => assertDownloadable(p), 'DRM', new RegExp(drm));
    });
  }

  test('clear-key AES-128 is not DRM and a finished playlist is downloadable', () => {
    const p = media(vod('#EXT-X-KEY:METHOD=AES-128,URI="k"', '#EXTINF:4,', 'a.ts'));
    assert.equal(detectDrm(p), null);
    assert.doesNotThrow(() => assertDownloadable(p));
  });

  test('several DRM systems are all named', () => {
    const p = media(
      vod(
        '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://a",KEYFORMAT="com.apple.streamingkeydelivery"',
        '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="data:,w",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"',
        '#EXTINF:4,',
        'a.ts',
      ),
    );
    assert.equal(detectDrm(p), 'FairPlay, Widevine');
  });

  test('DRM is detected from a master playlist EXT-X-SESSION-KEY', () => {
    const p = master(
      m3u8(
        '#EXTM3U',
        '#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://x"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1',
        'v.m3u8',
      ),
    );
    assert.equal(detectDrm(p), 'FairPlay');
  });

  test('a live playlist (no EXT-X-ENDLIST) is downloadable, and live: it is recorded', () => {
    const p = media(
      m3u8('#EXTM3U', '#EXT-X-TARGETDURATION:4', '#EXT-X-MEDIA-SEQUENCE:9', '#EXTINF:4,', 'a.ts'),
    );
    assert.doesNotThrow(() => assertDownloadable(p));
    assert.equal(isLive(p), true);
  });

  test('PLAYLIST-TYPE:VOD without EXT-X-ENDLIST is complete, not live', () => {
    const p = media(m3u8('#EXTM3U', '#EXT-X-PLAYLIST-TYPE:VOD', '#EXTINF:4,', 'a.ts'));
    assert.doesNotThrow(() => assertDownloadable(p));
    assert.equal(isLive(p), false);
  });

  test('a finished playlist with no segments is NOT_A_PLAYLIST', () => {
    throwsKind(() => assertDownloadable(media(vod())), 'NOT_A_PLAYLIST', /no segments/);
  });
});

describe('master playlists', () => {
  const text = m3u8(
    '#EXTM3U',
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="a/en.m3u8"',
    '#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC",INSTREAM-ID="CC1"',
    '#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000,RESOLUTION=640x360,CODECS="avc1.4d401e, mp4a.40.2",FRAME-RATE=29.97,AUDIO="aac",SUBTITLES="subs"',
    'v/360.m3u8',
    '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI="v/360-iframes.m3u8"',
    '#EXT-X-STREAM-INF:BANDWIDTH=2560000',
    'v/720.m3u8',
  );
  const p = master(text, 'https://example.com/master.m3u8');

  test('variants carry their attributes and I-frame variants are kept apart', () => {
    assert.equal(p.variants.length, 2);
    const v = p.variants[0]!;
    assert.deepEqual(
      [v.uri, v.resolvedUri, v.bandwidth, v.averageBandwidth, v.resolution, v.codecs, v.frameRate],
      [
        'v/360.m3u8',
        'https://example.com/v/360.m3u8',
        1280000,
        1000000,
        { width: 640, height: 360 },
        'avc1.4d401e, mp4a.40.2',
        29.97,
      ],
    );
    assert.deepEqual([v.audio, v.subtitles, v.video, v.closedCaptions], ['aac', 'subs', null, null]);
    assert.deepEqual(
      p.iframeVariants.map((x) => [x.uri, x.iFrameOnly]),
      [['v/360-iframes.m3u8', true]],
    );
  });

  test('renditions are listed in file order, including groups no variant references', () => {
    assert.deepEqual(
      p.renditions.map((r) => [r.type, r.groupId, r.name, r.language, r.uri, r.default, r.autoselect]),
      [
        ['AUDIO', 'aac', 'English', 'en', 'a/en.m3u8', true, true],
        ['CLOSED-CAPTIONS', 'cc', 'CC', null, null, false, false],
      ],
    );
  });

  test('a playlist with only session data is a master with no variants', () => {
    const q = master(m3u8('#EXTM3U', '#EXT-X-SESSION-DATA:DATA-ID="com.example.title",VALUE="x"'));
    assert.equal(q.variants.length, 0);
  });
});

describe('info JSON and table', () => {
  const keysOf = (o: object): string[] => Object.keys(o).sort();

  test('master JSON has the contract fields, nulls for missing values and resolved_uri with a base', () => {
    const p: Playlist = parsePlaylist(
      m3u8(
        '#EXTM3U',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Main",DEFAULT=YES',
        '#EXT-X-STREAM-INF:BANDWIDTH=1',
        'v.m3u8',
      ),
      'https://example.com/m.m3u8',
    );
    const json = toInfoJson(p, true);
    assert.equal(json.kind, 'master');
    if (json.kind !== 'master') return;
    assert.deepEqual(json.variants[0], {
      uri: 'v.m3u8',
      resolved_uri: 'https://example.com/v.m3u8',
      bandwidth: 1,
      average_bandwidth: null,
      resolution: null,
      codecs: null,
      frame_rate: null,
      audio: null,
      video: null,
      subtitles: null,
      closed_captions: null,
    });
    assert.deepEqual(json.renditions[0], {
      type: 'AUDIO',
      group_id: 'a',
      name: 'Main',
      language: null,
      uri: null,
      resolved_uri: null,
      default: true,
      autoselect: false,
      forced: false,
      characteristics: null,
      channels: null,
    });
  });

  test('media JSON has the contract fields, the identity key in effect and the init section', () => {
    const p = media(
      vod(
        '#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0x01',
        '#EXT-X-MAP:URI="i.mp4",BYTERANGE="10@0"',
        '#EXTINF:4.5,Title',
        '#EXT-X-BYTERANGE:100@10',
        'a.mp4',
      ),
      'https://example.com/p/m.m3u8',
    );
    const json = toInfoJson(p, true);
    assert.equal(json.kind, 'media');
    if (json.kind !== 'media') return;
    for (const name of ['target_duration', 'media_sequence', 'endlist', 'playlist_type', 'segment_count']) {
      assert.ok(name in json, name);
    }
    assert.deepEqual([json.segment_count, json.total_duration, json.endlist], [1, 4.5, true]);
    const s = json.segments[0]!;
    assert.deepEqual(
      keysOf(s),
      keysOf({
        uri: 0,
        resolved_uri: 0,
        duration: 0,
        msn: 0,
        byterange: 0,
        discontinuity: 0,
        discontinuity_sequence: 0,
        key: 0,
        keys: 0,
        map: 0,
        title: 0,
        pdt: 0,
        gap: 0,
      }),
    );
    assert.deepEqual(s.key, {
      method: 'AES-128',
      uri: 'k',
      resolved_uri: 'https://example.com/p/k',
      iv: '0x01',
    });
    assert.deepEqual(s.byterange, { offset: 10, length: 100 });
    assert.deepEqual(
      [s.map?.uri, s.map?.resolved_uri, s.map?.byterange],
      ['i.mp4', 'https://example.com/p/i.mp4', { offset: 0, length: 10 }],
    );
    assert.deepEqual([s.title, s.pdt, s.gap], ['Title', null, false]);
  });

  test('the table lists variants like yt-dlp -F and summarises media playlists', () => {
    const m = parsePlaylist(
      m3u8(
        '#EXTM3U',
        '#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720,CODECS="avc1.64001f"',
        '720.m3u8',
      ),
    );
    const table = formatInfoTable(m);
    assert.match(table, /RESOLUTION/);
    assert.match(table, /1280x720 .* 2560k .* avc1\.64001f .* 720\.m3u8/);
    const summary = formatInfoTable(media(vod('#EXTINF:61.5,', 'a.ts')));
    assert.match(summary, /1 segment, 00:01:01\.500/);
    assert.match(summary, /complete/);
  });
});
