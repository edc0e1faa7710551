/**
 * Where every sample of an MP4 is, read from its moov alone (ISO/IEC 14496-12 8.6–8.7): per track the
 * samples' file offsets, sizes and chunks (stsz/stz2, stsc, stco/co64), their decode and presentation
 * times (stts, ctts, the edit list, mdhd's timescale) and the sync samples (stss). A clip downloads
 * only the bytes of the samples it needs, so anything this reader is not sure of (fragments, several
 * edits, tables that disagree) is a null answer, and the caller fetches the whole file instead.
 */
import { boxHeader } from './mp4-box-reader.js';

interface Box {
  type: string;
  /** Payload [start, end) in the moov buffer. */
  start: number;
  end: number;
}

function children(b: Buffer, from: number, to: number): Box[] {
  const out: Box[] = [];
  for (let at = from; ; ) {
    const h = boxHeader(b, at, to);
    if (!h) break;
    if (h.size < h.header || at + h.size > to) throw new RangeError('box overruns its parent');
    out.push({ type: h.type, start: at + h.header, end: at + h.size });
    at += h.size;
  }
  return out;
}

const find = (b: Buffer, parent: Box, type: string) =>
  children(b, parent.start, parent.end).find((c) => c.type === type) ?? null;

export interface TrackSamples {
  trackId: number;
  /** The handler: 'vide', 'soun', 'text', … */
  handler: string;
  timescale: number;
  /** Per sample, in decode order. */
  offsets: number[];
  sizes: number[];
  /** Index of the sample's chunk. */
  chunkOf: number[];
  /** Presentation time of each sample, in seconds on the movie's timeline (edit list applied). */
  pts: number[];
  /** Decode time, in seconds on the same timeline. */
  dts: number[];
  /** Sync sample indices (0-based, ascending); null: every sample is one. */
  sync: number[] | null;
}

export interface SampleIndex {
  /** The movie's duration in seconds (mvhd). */
  duration: number;
  tracks: TrackSamples[];
}

/**
 * A full box's entries after its version/flags and entry count, each `width` bytes; a count that
 * claims more than the box holds (a damaged or hostile table) is a RangeError: not a moov to vouch for.
 */
function entries(b: Buffer, box: Box | null, width: number): { at: number; count: number } | null {
  if (!box) return null;
  const count = b.readUInt32BE(box.start + 4);
  if (box.start + 8 + count * width > box.end) throw new RangeError(`a ${box.type} shorter than its count`);
  return { at: box.start + 8, count };
}

/**
 * More samples than this in one track (9 hours at 60 fps, 11 hours of 48 kHz AAC; uncompressed audio
 * counts each PCM frame) is left to the whole-file path rather than held as arrays here: an index
 * keeps about 45 bytes of heap a sample (measured, 1.5 M samples), and more while it is built.
 */
const MAX_SAMPLES = 2_000_000;

function sampleSizes(b: Buffer, stbl: Box, fileSize: number): number[] | null {
  const stsz = find(b, stbl, 'stsz');
  if (stsz) {
    const fixed = b.readUInt32BE(stsz.start + 4);
    const count = b.readUInt32BE(stsz.start + 8);
    if (count > MAX_SAMPLES) return null;
    // One size for all: a few bytes may claim millions of samples, which must fit in the file.
    if (fixed) return count * fixed <= fileSize ? new Array<number>(count).fill(fixed) : null;
    if (stsz.start + 12 + 4 * count > stsz.end) return null;
    return Array.from({ length: count }, (_, i) => b.readUInt32BE(stsz.start + 12 + 4 * i));
  }
  const stz2 = find(b, stbl, 'stz2');
  if (!stz2) return null;
  const field = b[stz2.start + 7];
  const count = b.readUInt32BE(stz2.start + 8);
  if (count > MAX_SAMPLES || !field || stz2.start + 12 + Math.ceil((count * field) / 8) > stz2.end)
    return null;
  const at = stz2.start + 12;
  if (field === 8) return Array.from({ length: count }, (_, i) => b[at + i]!);
  if (field === 16) return Array.from({ length: count }, (_, i) => b.readUInt16BE(at + 2 * i));
  if (field === 4)
    return Array.from({ length: count }, (_, i) => (b[at + (i >> 1)]! >> (i & 1 ? 0 : 4)) & 15);
  return null;
}

function chunkOffsets(b: Buffer, stbl: Box): number[] | null {
  const stco = entries(b, find(b, stbl, 'stco'), 4);
  if (stco) return Array.from({ length: stco.count }, (_, i) => b.readUInt32BE(stco.at + 4 * i));
  const co64 = entries(b, find(b, stbl, 'co64'), 8);
  if (!co64) return null;
  return Array.from({ length: co64.count }, (_, i) => Number(b.readBigUInt64BE(co64.at + 8 * i)));
}

/** Each sample's offset and chunk, from the chunk offsets, stsc and the sizes. */
function place(b: Buffer, stbl: Box, sizes: number[]): { offsets: number[]; chunkOf: number[] } | null {
  const chunks = chunkOffsets(b, stbl);
  const stsc = entries(b, find(b, stbl, 'stsc'), 12);
  if (!chunks || !stsc || stsc.count === 0) return null;
  const offsets: number[] = [];
  const chunkOf: number[] = [];
  for (let e = 0; e < stsc.count; e++) {
    const first = b.readUInt32BE(stsc.at + 12 * e) - 1;
    const perChunk = b.readUInt32BE(stsc.at + 12 * e + 4);
    const next = e + 1 < stsc.count ? b.readUInt32BE(stsc.at + 12 * (e + 1)) - 1 : chunks.length;
    if (first < 0 || next < first || next > chunks.length) return null;
    for (let c = first; c < next && offsets.length < sizes.length; c++) {
      let at = chunks[c]!;
      for (let k = 0; k < perChunk && offsets.length < sizes.length; k++) {
        offsets.push(at);
        chunkOf.push(c);
        at += sizes[offsets.length - 1]!;
      }
    }
  }
  return offsets.length === sizes.length ? { offsets, chunkOf } : null;
}

/** Decode times (stts) and composition offsets (ctts) in media units, one per sample. */
function times(b: Buffer, stbl: Box, count: number): { dts: number[]; cts: number[] } | null {
  const stts = entries(b, find(b, stbl, 'stts'), 8);
  if (!stts) return null;
  const dts: number[] = [];
  let t = 0;
  for (let e = 0; e < stts.count; e++) {
    const n = b.readUInt32BE(stts.at + 8 * e);
    const delta = b.readUInt32BE(stts.at + 8 * e + 4);
    for (let k = 0; k < n && dts.length < count; k++, t += delta) dts.push(t);
  }
  if (dts.length !== count) return null;
  const cts = new Array<number>(count).fill(0);
  const ctts = entries(b, find(b, stbl, 'ctts'), 8);
  if (ctts) {
    // Version 1 offsets are signed; version 0 ones written by some muxers are too in practice.
    let i = 0;
    for (let e = 0; e < ctts.count; e++) {
      const n = b.readUInt32BE(ctts.at + 8 * e);
      const offset = b.readInt32BE(ctts.at + 8 * e + 4);
      for (let k = 0; k < n && i < count; k++) cts[i++] = offset;
    }
  }
  return { dts, cts };
}

/**
 * Where the edit list puts media time 0 on the movie timeline: seconds of leading empty edits, and
 * the media time the first real edit starts at. More than one real edit (a re-cut movie) → null.
 */
function edits(b: Buffer, trak: Box, movieScale: number): { delay: number; mediaStart: number } | null {
  const edts = find(b, trak, 'edts');
  const elst = edts && find(b, edts, 'elst');
  if (!elst) return { delay: 0, mediaStart: 0 };
  const v1 = b[elst.start] === 1;
  const count = b.readUInt32BE(elst.start + 4);
  const width = v1 ? 20 : 12;
  let delay = 0;
  let mediaStart: number | null = null;
  for (let e = 0; e < count; e++) {
    const at = elst.start + 8 + width * e;
    const duration = v1 ? Number(b.readBigUInt64BE(at)) : b.readUInt32BE(at);
    const time = v1 ? Number(b.readBigInt64BE(at + 8)) : b.readInt32BE(at + 4);
    if (time === -1) {
      if (mediaStart !== null) return null;
      delay += duration / movieScale;
    } else if (mediaStart === null) mediaStart = time;
    else return null;
  }
  return { delay, mediaStart: mediaStart ?? 0 };
}

function readTrack(b: Buffer, trak: Box, movieScale: number, fileSize: number): TrackSamples | null {
  const tkhd = find(b, trak, 'tkhd');
  const mdia = find(b, trak, 'mdia');
  const mdhd = mdia && find(b, mdia, 'mdhd');
  const hdlr = mdia && find(b, mdia, 'hdlr');
  const minf = mdia && find(b, mdia, 'minf');
  const stbl = minf && find(b, minf, 'stbl');
  if (!tkhd || !mdhd || !hdlr || !stbl) return null;
  const timescale = b.readUInt32BE(mdhd.start + (b[mdhd.start] === 1 ? 20 : 12));
  const trackId = b.readUInt32BE(tkhd.start + (b[tkhd.start] === 1 ? 20 : 12));
  const sizes = sampleSizes(b, stbl, fileSize);
  const placed = sizes && place(b, stbl, sizes);
  const t = sizes && times(b, stbl, sizes.length);
  const edit = edits(b, trak, movieScale);
  if (!timescale || !sizes || !placed || !t || !edit) return null;
  const at = (units: number) => (units - edit.mediaStart) / timescale + edit.delay;
  const stss = entries(b, find(b, stbl, 'stss'), 4);
  const sync = stss && Array.from({ length: stss.count }, (_, i) => b.readUInt32BE(stss.at + 4 * i) - 1);
  if (sync?.some((s, i) => s < 0 || s >= sizes.length || (i > 0 && s <= sync[i - 1]!))) return null;
  return {
    trackId,
    handler: b.toString('latin1', hdlr.start + 8, hdlr.start + 12),
    timescale,
    sizes,
    ...placed,
    dts: t.dts.map(at),
    pts: t.dts.map((d, i) => at(d + t.cts[i]!)),
    sync,
  };
}

/**
 * The sample index of a moov box (the whole box, header included) of a file of `fileSize` bytes, or
 * null when the file is fragmented (mvex: the samples live in moofs) or anything in the tables is not
 * understood.
 */
export function readSampleIndex(moov: Buffer, fileSize = Number.POSITIVE_INFINITY): SampleIndex | null {
  try {
    const root = { type: 'moov', start: 8, end: moov.length };
    if (moov.toString('latin1', 4, 8) !== 'moov' || find(moov, root, 'mvex')) return null;
    const mvhd = find(moov, root, 'mvhd');
    if (!mvhd) return null;
    const v1 = moov[mvhd.start] === 1;
    const scale = moov.readUInt32BE(mvhd.start + (v1 ? 20 : 12));
    const length = v1 ? Number(moov.readBigUInt64BE(mvhd.start + 24)) : moov.readUInt32BE(mvhd.start + 16);
    if (!scale) return null;
    const tracks: TrackSamples[] = [];
    for (const trak of children(moov, root.start, root.end)) {
      if (trak.type !== 'trak') continue;
      const track = readTrack(moov, trak, scale, fileSize);
      if (!track) return null;
      if (track.sizes.length > 0) tracks.push(track);
    }
    if (tracks.length === 0) return null;
    // Some muxers leave mvhd's duration at 0: the last sample shown is a floor for it.
    const last = Math.max(...tracks.map((t) => Math.max(...t.pts.slice(-8))));
    return { duration: Math.max(length / scale, last), tracks };
  } catch (err) {
    // A table that points outside its box: not a moov this reader can vouch for.
    if (err instanceof RangeError) return null;
    throw err;
  }
}
