/**
 * The init segment of fragmented MP4 (CMAF, ISO/IEC 14496-12 8.8): per trak its id, handler, media
 * timescale and language, the stsd sample entry kept verbatim (so any codec is carried without
 * codec-specific code), the tkhd size, the edit list and the mvex/trex sample defaults. Encrypted
 * entries are refused: their samples cannot be written as they are. Pure: throws on what it refuses.
 */
import { type Box, child, children, payload, readTime, root, version } from './mp4-box-reader.js';

export interface TrexDefaults {
  descriptionIndex: number;
  duration: number;
  size: number;
  flags: number;
}

export interface Fmp4TrackInfo {
  id: number;
  /** hdlr handler_type: vide, soun, or another kind the remux leaves out. */
  handler: string;
  timescale: number;
  language: string;
  /** The one sample entry of the stsd (avc1, hvc1, mp4a, ac-3, Opus, ...), box header included. */
  entry: Buffer;
  /** tkhd width and height, 16.16 fixed point as stored. */
  width: number;
  height: number;
  /**
   * The edit list reduced to what a fragmented track uses: `empty` seconds of nothing first, then the
   * media from `mediaTime` (track ticks) on. Null without an edit list.
   */
  edit: { empty: number; mediaTime: number } | null;
  trex: TrexDefaults;
}

export interface Fmp4Init {
  tracks: Fmp4TrackInfo[];
}

const ENCRYPTED = new Set(['encv', 'enca', 'enct', 'encs']);

function need(b: Buffer, parent: Box, type: string): Box {
  const c = child(b, parent, type);
  if (!c) throw new Error(`no ${type} in the ${parent.type}`);
  return c;
}

function language(packed: number): string {
  const c = [(packed >> 10) & 31, (packed >> 5) & 31, packed & 31].map((v) => String.fromCharCode(v + 0x60));
  const code = c.join('');
  return /^[a-z]{3}$/.test(code) ? code : 'und';
}

function readEdit(b: Buffer, elst: Box, movieTimescale: number): Fmp4TrackInfo['edit'] {
  const wide = version(b, elst) === 1;
  let at = payload(elst, true);
  const count = b.readUInt32BE(at);
  at += 4;
  let empty = 0;
  let mediaTime: number | null = null;
  for (let i = 0; i < count; i++, at += wide ? 20 : 12) {
    if (at + (wide ? 20 : 12) > elst.start + elst.size) throw new Error('a short elst');
    const duration = readTime(b, at, wide);
    const time = wide ? Number(b.readBigInt64BE(at + 8)) : b.readInt32BE(at + 4);
    if (time === -1) {
      if (mediaTime !== null) throw new Error('an edit list with a gap after the media');
      empty += duration / movieTimescale;
    } else if (mediaTime === null) {
      mediaTime = time;
    } else {
      throw new Error('an edit list with more than one media edit');
    }
  }
  return { empty, mediaTime: mediaTime ?? 0 };
}

function readTrak(b: Buffer, trak: Box, movieTimescale: number): Omit<Fmp4TrackInfo, 'trex'> {
  const tkhd = need(b, trak, 'tkhd');
  const tv1 = version(b, tkhd) === 1;
  const id = b.readUInt32BE(payload(tkhd, true) + (tv1 ? 16 : 8));
  const sizeAt = tkhd.start + tkhd.size - 8;
  const mdia = need(b, trak, 'mdia');
  const mdhd = need(b, mdia, 'mdhd');
  const mv1 = version(b, mdhd) === 1;
  const m = payload(mdhd, true) + (mv1 ? 16 : 8);
  const timescale = b.readUInt32BE(m);
  if (timescale === 0) throw new Error('a track timescale of 0');
  const lang = b.readUInt16BE(m + (mv1 ? 12 : 8));
  const handler = b.toString(
    'latin1',
    payload(need(b, mdia, 'hdlr'), true) + 4,
    payload(need(b, mdia, 'hdlr'), true) + 8,
  );
  const stbl = need(b, need(b, mdia, 'minf'), 'stbl');
  const stsd = need(b, stbl, 'stsd');
  const entries = [...children(b, stsd, 8)];
  const count = b.readUInt32BE(payload(stsd, true));
  if (count !== 1 || entries.length !== 1) throw new Error(`${count} sample entries in one track`);
  const e = entries[0]!;
  if (ENCRYPTED.has(e.type)) throw new Error(`encrypted samples (${e.type})`);
  const edts = child(b, trak, 'edts');
  const elst = edts && child(b, edts, 'elst');
  return {
    id,
    handler,
    timescale,
    language: language(lang),
    entry: Buffer.from(b.subarray(e.start, e.start + e.size)),
    width: b.readUInt32BE(sizeAt),
    height: b.readUInt32BE(sizeAt + 4),
    edit: elst ? readEdit(b, elst, movieTimescale) : null,
  };
}

/** The tracks of a `moov` box (the whole box, header included); throws on what it cannot carry. */
export function parseInit(moov: Buffer): Fmp4Init {
  const top = root(moov);
  if (top.type !== 'moov') throw new Error(`a ${top.type} where the moov should be`);
  const mvhd = need(moov, top, 'mvhd');
  const movieTimescale = moov.readUInt32BE(payload(mvhd, true) + (version(moov, mvhd) === 1 ? 16 : 8));
  if (movieTimescale === 0) throw new Error('a movie timescale of 0');
  const trex = new Map<number, TrexDefaults>();
  const mvex = child(moov, top, 'mvex');
  for (const x of mvex ? children(moov, mvex) : []) {
    if (x.type !== 'trex') continue;
    const p = payload(x, true);
    trex.set(moov.readUInt32BE(p), {
      descriptionIndex: moov.readUInt32BE(p + 4),
      duration: moov.readUInt32BE(p + 8),
      size: moov.readUInt32BE(p + 12),
      flags: moov.readUInt32BE(p + 16),
    });
  }
  const tracks: Fmp4TrackInfo[] = [];
  for (const t of children(moov, top)) {
    if (t.type !== 'trak') continue;
    const info = readTrak(moov, t, movieTimescale);
    tracks.push({
      ...info,
      trex: trex.get(info.id) ?? { descriptionIndex: 1, duration: 0, size: 0, flags: 0 },
    });
  }
  return { tracks };
}
