/**
 * Fragmented MP4 text tracks (ISO/IEC 14496-30) made by hand, as DASH packagers write them: an init
 * segment with one `stpp` (TTML) or `wvtt` (WebVTT) track, and media segments of moof + mdat whose
 * samples are TTML documents or WebVTT cue boxes. ffmpeg 5.1 cannot write either fragmented ("not yet
 * implemented" for TTML, no tag for WebVTT in MP4), so the boxes are written here; ffprobe reads them
 * back in the tests as a check that they are well-formed.
 */
import { box, fullBox, u32be, u64be } from '../../src/media/mp4-box-writer.js';

const zeros = (n: number) => Buffer.alloc(n);
const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');
const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};

/** The sample entry: stpp (namespace, schema location, auxiliary MIME types) or wvtt (with its vttC). */
function sampleEntry(codec: 'stpp' | 'wvtt'): Buffer {
  const common = Buffer.concat([zeros(6), u16(1)]);
  if (codec === 'stpp') return box('stpp', common, cstr('http://www.w3.org/ns/ttml'), cstr(''), cstr(''));
  return box('wvtt', common, box('vttC', Buffer.from('WEBVTT', 'utf8')));
}

/** An init segment: ftyp, and a moov with one text track (id 1) of `timescale` ticks a second. */
export function textInit(codec: 'stpp' | 'wvtt', timescale: number, language = 'eng'): Buffer {
  const lang = [...language].reduce((n, c) => (n << 5) | (c.charCodeAt(0) - 0x60), 0);
  const matrix = u32be(0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000);
  const mvhd = fullBox(
    'mvhd',
    0,
    0,
    u32be(0, 0, 1000, 0, 0x10000),
    u16(0x100),
    zeros(10),
    matrix,
    zeros(24),
    u32be(2),
  );
  const tkhd = fullBox('tkhd', 0, 3, u32be(0, 0, 1, 0, 0), zeros(8), zeros(8), matrix, u32be(0, 0));
  const mdhd = fullBox('mdhd', 0, 0, u32be(0, 0, timescale, 0), u16(lang), u16(0));
  const hdlr = fullBox('hdlr', 0, 0, u32be(0), Buffer.from('subt', 'latin1'), zeros(12), cstr('Subtitles'));
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32be(1), sampleEntry(codec)),
    fullBox('stts', 0, 0, u32be(0)),
    fullBox('stsc', 0, 0, u32be(0)),
    fullBox('stsz', 0, 0, u32be(0, 0)),
    fullBox('stco', 0, 0, u32be(0)),
  );
  const dinf = box('dinf', fullBox('dref', 0, 0, u32be(1), fullBox('url ', 0, 1)));
  const minf = box('minf', fullBox('sthd', 0, 0), dinf, stbl);
  const trak = box('trak', tkhd, box('mdia', mdhd, hdlr, minf));
  const mvex = box('mvex', fullBox('trex', 0, 0, u32be(1, 1, 0, 0, 0)));
  const ftyp = box('ftyp', Buffer.from('iso6', 'latin1'), u32be(0), Buffer.from('iso6dash', 'latin1'));
  return Buffer.concat([ftyp, box('moov', mvhd, trak, mvex)]);
}

export interface TextSample {
  /** Ticks of the track's timescale. */
  duration: number;
  data: Buffer;
}

/**
 * A media segment: one moof (default-base-is-moof, tfdt at `baseTime` ticks, a trun with each
 * sample's duration and size) and its mdat.
 */
export function textSegment(sequence: number, baseTime: number, samples: readonly TextSample[]): Buffer {
  const trunBody = (dataOffset: number) =>
    Buffer.concat([
      u32be(samples.length, dataOffset),
      ...samples.map((s) => u32be(s.duration, s.data.length)),
    ]);
  const moofOf = (dataOffset: number) =>
    box(
      'moof',
      fullBox('mfhd', 0, 0, u32be(sequence)),
      box(
        'traf',
        fullBox('tfhd', 0, 0x20000, u32be(1)),
        fullBox('tfdt', 1, 0, u64be(baseTime)),
        fullBox('trun', 0, 0x1 | 0x100 | 0x200, trunBody(dataOffset)),
      ),
    );
  const size = moofOf(0).length;
  const styp = box('styp', Buffer.from('msdh', 'latin1'), u32be(0), Buffer.from('msdhmsix', 'latin1'));
  return Buffer.concat([styp, moofOf(size + 8), box('mdat', ...samples.map((s) => s.data))]);
}

/** A wvtt sample: one vttc box per cue (payl text, optional sttg settings), or vtte for none. */
export function wvttSample(cues: readonly { text: string; settings?: string }[]): Buffer {
  if (cues.length === 0) return box('vtte');
  return Buffer.concat(
    cues.map((c) =>
      box(
        'vttc',
        ...(c.settings ? [box('sttg', Buffer.from(c.settings, 'utf8'))] : []),
        box('payl', Buffer.from(c.text, 'utf8')),
      ),
    ),
  );
}
