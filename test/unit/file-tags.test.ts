import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildMergeArgs } from '../../src/media/ffmpeg/merge-args.js';
import { matroskaArgs, posterArgs, posterTime } from '../../src/media/ffmpeg/output-args.js';
import { fileTags, metadataArgs, udtaBox } from '../../src/media/file-tags.js';
import { iso639_2, packLanguage } from '../../src/media/language.js';
import { box, fullBox, u32be } from '../../src/media/mp4-box-writer.js';
import { boxesIn, moovWithTags, shiftChunkOffsets } from '../../src/media/mp4-tag-edit.js';
import { parsePlaylist } from '../../src/playlist/parser.js';
import { muxedAudioRendition, selectAudioRendition } from '../../src/playlist/selection.js';

/** The text of every ilst item of a moov, by item type. */
function items(moov: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (from: number, to: number, path: string) => {
    for (const b of boxesIn(moov, from, to) ?? []) {
      const p = `${path}/${b.type}`;
      if (b.type === 'moov' || b.type === 'udta') walk(b.body, b.end, p);
      else if (b.type === 'meta') walk(b.body + 4, b.end, p);
      else if (b.type === 'ilst') {
        for (const it of boxesIn(moov, b.body, b.end) ?? []) {
          out[it.type] = moov.toString('utf8', it.body + 16, it.end);
        }
      }
    }
  };
  walk(0, moov.length, '');
  return out;
}

const mvhd = fullBox('mvhd', 0, 0, Buffer.alloc(96));
const tags = { title: 'Tïtle', comment: 'https://example.com/a.m3u8' };

describe('languages', () => {
  it('reads BCP 47 tags as ISO 639-2/T: region and script dropped, bibliographic codes mapped, unknown und', () => {
    assert.equal(iso639_2('en'), 'eng');
    assert.equal(iso639_2('en-US'), 'eng');
    assert.equal(iso639_2('pt_BR'), 'por');
    assert.equal(iso639_2('FR'), 'fra');
    assert.equal(iso639_2('fre'), 'fra');
    assert.equal(iso639_2('ger'), 'deu');
    assert.equal(iso639_2('zh-Hant'), 'zho');
    assert.equal(iso639_2('yue'), 'yue');
    assert.equal(iso639_2('xx'), 'und');
    assert.equal(iso639_2(''), 'und');
    assert.equal(iso639_2(null), 'und');
  });

  it('packs three letters into mdhd 15 bits (und = 0x55c4)', () => {
    assert.equal(packLanguage('und'), 0x55c4);
    assert.equal(packLanguage('eng'), 0x15c7);
    assert.equal(packLanguage('EN'), 0x55c4);
  });
});

describe('title and source tags', () => {
  it('masks credentials in the source and leaves an empty name out', () => {
    assert.deepEqual(fileTags('x', 'https://u:p@h.example/v.mp4'), {
      title: 'x',
      comment: 'https://***:***@h.example/v.mp4',
    });
    assert.deepEqual(metadataArgs(fileTags('', 'https://h/v')), ['-metadata', 'comment=https://h/v']);
    // Signed URLs' tokens live in the query: they stay out of the file.
    assert.equal(
      fileTags('x', 'https://u:p@cdn.example/v/a.m3u8?token=SECRET&Expires=1#t=2').comment,
      'https://***:***@cdn.example/v/a.m3u8',
    );
  });

  it('builds udta/meta(hdlr mdir)/ilst with ©nam and ©cmt as UTF-8 data', () => {
    const moov = box('moov', mvhd, udtaBox(tags)!);
    assert.deepEqual(items(moov), { '\xa9nam': tags.title, '\xa9cmt': tags.comment });
    assert.equal(udtaBox({ title: null, comment: null }), null);
  });

  it('adds a udta to a moov without one, after the other boxes', () => {
    const moov = box('moov', mvhd);
    const out = moovWithTags(moov, tags)!;
    assert.deepEqual(
      boxesIn(out, 8, out.length)!.map((b) => b.type),
      ['mvhd', 'udta'],
    );
    assert.deepEqual(items(out), { '\xa9nam': tags.title, '\xa9cmt': tags.comment });
  });

  it('replaces earlier ©nam/©cmt items, keeps the others, and keeps the udta in its place', () => {
    const other = box('\xa9too', fullBox('data', 0, 1, u32be(0), Buffer.from('Lavf59')));
    const old = box('\xa9nam', fullBox('data', 0, 1, u32be(0), Buffer.from('old')));
    const meta = fullBox(
      'meta',
      0,
      0,
      fullBox('hdlr', 0, 0, u32be(0), Buffer.from('mdirappl'), u32be(0, 0), Buffer.alloc(1)),
      box('ilst', old, other),
    );
    const moov = box('moov', mvhd, box('udta', meta), box('trak'));
    const out = moovWithTags(moov, tags)!;
    assert.deepEqual(items(out), { '\xa9too': 'Lavf59', '\xa9nam': tags.title, '\xa9cmt': tags.comment });
    assert.deepEqual(
      boxesIn(out, 8, out.length)!.map((b) => b.type),
      ['mvhd', 'udta', 'trak'],
    );
  });

  it('leaves a meta that is not iTunes metadata alone and adds one beside it', () => {
    const id3 = fullBox(
      'meta',
      0,
      0,
      fullBox('hdlr', 0, 0, u32be(0), Buffer.from('ID32'), u32be(0, 0, 0), Buffer.alloc(1)),
    );
    const moov = box('moov', mvhd, box('udta', id3));
    const out = moovWithTags(moov, tags)!;
    const udta = boxesIn(out, 8, out.length)!.find((b) => b.type === 'udta')!;
    const metas = boxesIn(out, udta.body, udta.end)!;
    assert.equal(metas.length, 2);
    assert.ok(out.subarray(metas[0]!.start, metas[0]!.end).equals(id3));
    assert.deepEqual(items(out), { '\xa9nam': tags.title, '\xa9cmt': tags.comment });
  });

  it('refuses a moov whose boxes do not add up', () => {
    const moov = box('moov', mvhd);
    moov.writeUInt32BE(9999, 8);
    assert.equal(moovWithTags(moov, tags), null);
  });
});

describe('chunk offsets', () => {
  const stbl = (offsets: Buffer) => box('trak', box('mdia', box('minf', box('stbl', offsets))));

  it('moves stco and co64 entries by the growth of the moov', () => {
    const stco = fullBox('stco', 0, 0, u32be(2, 100, 5000));
    const co64 = fullBox('co64', 0, 0, u32be(1), Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]));
    const moov = box('moov', mvhd, stbl(stco), stbl(co64));
    const out = shiftChunkOffsets(moov, 42)!;
    assert.ok(out.includes(u32be(2, 142, 5042)));
    assert.ok(out.includes(Buffer.from([0, 0, 0, 1, 0, 0, 0, 42])));
    assert.ok(moov.includes(u32be(2, 100, 5000)), 'the input is left as it was');
  });

  it('gives up when a 32-bit offset would pass 4 GB', () => {
    const moov = box('moov', mvhd, stbl(fullBox('stco', 0, 0, u32be(1, 0xfffffff0))));
    assert.equal(shiftChunkOffsets(moov, 100), null);
  });

  it('gives up on a count past its box, rather than move the bytes of the boxes after it', () => {
    const moov = box(
      'moov',
      mvhd,
      stbl(fullBox('stco', 0, 0, u32be(3, 100))),
      stbl(fullBox('stco', 0, 0, u32be(1, 7))),
    );
    assert.equal(shiftChunkOffsets(moov, 42), null);
  });
});

describe('ffmpeg arguments', () => {
  it('every merge writes the tags, and the audio rendition language when given', () => {
    const args = buildMergeArgs({
      main: { pipe: 0 },
      audio: { pipe: 3 },
      output: 'o.mp4',
      moovReserve: null,
      tags,
      audioLanguage: 'fr-CA',
    });
    const s = args.join(' ');
    assert.match(s, /-metadata title=Tïtle -metadata comment=https:\/\/example\.com\/a\.m3u8/);
    assert.match(s, /-metadata:s:a:0 language=fra/);
    assert.doesNotMatch(
      buildMergeArgs({ main: { pipe: 0 }, audio: null, output: 'o', moovReserve: null }).join(' '),
      /metadata/,
    );
  });

  it('takes the poster a tenth in, at most 10 s, from a keyframe, at most 640 px wide', () => {
    assert.equal(posterTime(30), 3);
    assert.equal(posterTime(3600), 10);
    assert.equal(posterTime(null), 0);
    const args = posterArgs('in.mp4', 'p.jpg', 3);
    assert.deepEqual(args.slice(args.indexOf('-ss'), args.indexOf('-ss') + 5), [
      '-ss',
      '3.000',
      '-noaccurate_seek',
      '-i',
      'in.mp4',
    ]);
    assert.ok(args.includes("scale='min(640,iw)':-2"));
  });

  it('remuxes into Matroska with every stream copied and text subtitles as SubRip', () => {
    const s = matroskaArgs('in.mp4', 'out.mkv', tags).join(' ');
    assert.match(s, /-map 0 -c copy -c:s srt/);
    assert.match(s, /-f matroska out\.mkv$/);
  });
});

describe('the language of audio muxed in the variant', () => {
  const master = (media: string[]) => {
    const p = parsePlaylist(
      ['#EXTM3U', ...media, '#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="a"', 'v.m3u8', ''].join('\n'),
      'https://h.example/m.m3u8',
    );
    assert.equal(p.kind, 'master');
    return p;
  };

  it('is the URI-less rendition the choice falls on, not a separate one', () => {
    const m = master([
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="D",LANGUAGE="de",DEFAULT=YES',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="F",LANGUAGE="fr",URI="fr.m3u8"',
    ]);
    const v = m.variants[0]!;
    assert.equal(muxedAudioRendition(m, v)?.language, 'de');
    assert.equal(selectAudioRendition(m, v), null);
    assert.equal(muxedAudioRendition(m, v, 'fr'), null);
    assert.equal(selectAudioRendition(m, v, 'fr')?.language, 'fr');
  });
});
