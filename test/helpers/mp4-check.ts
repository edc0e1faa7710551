/**
 * An independent reader of plain (not fragmented) MP4 files for tests (ISO/IEC 14496-12, 14496-15),
 * written apart from Gabe's own src/media/mp4-probe.ts and mp4box.ts so that a bug in those cannot hide
 * in its own check. `readMp4` walks the boxes and proves the structure a player relies on, throwing
 * `Mp4Invalid` with what is wrong:
 *
 * - the top-level boxes chain exactly to the end of the file (32- and 64-bit sizes), one moov, one mdat;
 * - every trak has tkhd, mdhd (timescale > 0), hdlr, one stsd entry, stts, stsc, stsz and stco or co64;
 * - the sample count of stts, stsz, ctts (when present) and stsc over the chunks agree;
 * - every sample (chunk offset + the sizes before it in its chunk) lies inside the mdat's payload;
 * - stss entries are in range and increasing; sample durations and track durations are positive;
 * - in an avc1 track, every sample is a chain of 4-byte length-prefixed NAL units filling it exactly.
 *
 * It returns the samples (offset, size, decode and composition time, sync flag) so tests can compare
 * two files sample by sample.
 */
import { createHash } from 'node:crypto';

export class Mp4Invalid extends Error {
  override readonly name = 'Mp4Invalid';
}

export interface Mp4Sample {
  offset: number;
  size: number;
  dts: number;
  cts: number;
  sync: boolean;
}

export interface Mp4Track {
  id: number;
  handler: string;
  /** The sample entry's type (avc1, mp4a, ...). */
  codec: string;
  timescale: number;
  duration: number;
  /** elst entries: [segment_duration, media_time]. */
  edits: [number, number][];
  samples: Mp4Sample[];
}

export interface Mp4File {
  /** Top-level box types in file order. */
  boxes: string[];
  tracks: Mp4Track[];
  /** The mdat's payload, [start, end) in the file. */
  mdat: [number, number];
}

function fail(what: string): never {
  throw new Mp4Invalid(what);
}

interface Box {
  type: string;
  /** Payload start and box end in the file. */
  start: number;
  end: number;
}

/** The boxes in [from, to), which must fill it exactly. */
function children(b: Buffer, from: number, to: number, where: string): Box[] {
  const out: Box[] = [];
  let at = from;
  while (at < to) {
    if (at + 8 > to) fail(`${where}: ${to - at} stray bytes at ${at}`);
    let size = b.readUInt32BE(at);
    let header = 8;
    if (size === 1) {
      if (at + 16 > to) fail(`${where}: a 64-bit size cut off at ${at}`);
      const big = b.readBigUInt64BE(at + 8);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${where}: box size ${big} at ${at}`);
      size = Number(big);
      header = 16;
    } else if (size === 0) {
      size = to - at; // to the end of the enclosing space
    }
    const type = b.toString('latin1', at + 4, at + 8);
    if (size < header) fail(`${where}: box '${type}' at ${at} has size ${size}`);
    if (at + size > to) fail(`${where}: box '${type}' at ${at} (size ${size}) runs past ${to}`);
    out.push({ type, start: at + header, end: at + size });
    at += size;
  }
  return out;
}

function one(boxes: Box[], type: string, where: string): Box {
  const found = boxes.filter((x) => x.type === type);
  if (found.length !== 1) fail(`${where}: ${found.length} '${type}' boxes, expected one`);
  return found[0]!;
}

function optional(boxes: Box[], type: string, where: string): Box | null {
  const found = boxes.filter((x) => x.type === type);
  if (found.length > 1) fail(`${where}: ${found.length} '${type}' boxes`);
  return found[0] ?? null;
}

/** A full box's payload after version and flags, with room for `need` bytes checked. */
function full(b: Buffer, box: Box, need: number, where: string): { version: number; at: number } {
  if (box.end - box.start < 4 + need) fail(`${where}: '${box.type}' too short`);
  return { version: b[box.start]!, at: box.start + 4 };
}

/** A table of `count` entries of `entry` bytes starting at `at`, which must fit in the box. */
function table(b: Buffer, box: Box, at: number, entry: number, where: string): number {
  if (at + 4 > box.end) fail(`${where}: '${box.type}' has no entry count`);
  const count = b.readUInt32BE(at);
  if (at + 4 + count * entry > box.end) fail(`${where}: '${box.type}' has ${count} entries past its end`);
  return count;
}

function readTrack(b: Buffer, trak: Box, mdat: [number, number], index: number): Mp4Track {
  const where = `trak ${index + 1}`;
  const kids = children(b, trak.start, trak.end, where);
  const tkhd = one(kids, 'tkhd', where);
  const th = full(b, tkhd, 32, `${where} tkhd`);
  const id = b.readUInt32BE(th.at + (th.version === 1 ? 16 : 8));
  const tkhdDuration = th.version === 1 ? Number(b.readBigUInt64BE(th.at + 24)) : b.readUInt32BE(th.at + 16);
  if (id === 0) fail(`${where}: track_ID 0`);
  if (!(tkhdDuration > 0)) fail(`${where}: tkhd duration ${tkhdDuration}`);
  const edits: [number, number][] = [];
  const edts = optional(kids, 'edts', where);
  if (edts) {
    const elst = one(children(b, edts.start, edts.end, `${where} edts`), 'elst', `${where} edts`);
    const eh = full(b, elst, 4, `${where} elst`);
    const wide = eh.version === 1;
    const n = table(b, elst, eh.at, wide ? 20 : 12, `${where} elst`);
    for (let i = 0; i < n; i++) {
      const e = eh.at + 4 + i * (wide ? 20 : 12);
      const duration = wide ? Number(b.readBigUInt64BE(e)) : b.readUInt32BE(e);
      const mediaTime = wide ? Number(b.readBigInt64BE(e + 8)) : b.readInt32BE(e + 4);
      if (mediaTime < -1) fail(`${where}: elst media_time ${mediaTime}`);
      edits.push([duration, mediaTime]);
    }
    if (n === 0) fail(`${where}: an empty elst`);
  }
  const mdia = one(kids, 'mdia', where);
  const mk = children(b, mdia.start, mdia.end, `${where} mdia`);
  const mdhd = one(mk, 'mdhd', `${where} mdia`);
  const mh = full(b, mdhd, 20, `${where} mdhd`);
  const timescale = b.readUInt32BE(mh.at + (mh.version === 1 ? 16 : 8));
  const duration = mh.version === 1 ? Number(b.readBigUInt64BE(mh.at + 20)) : b.readUInt32BE(mh.at + 12);
  if (timescale === 0) fail(`${where}: mdhd timescale 0`);
  if (!(duration > 0)) fail(`${where}: mdhd duration ${duration}`);
  const hdlr = one(mk, 'hdlr', `${where} mdia`);
  const handler = b.toString('latin1', hdlr.start + 8, hdlr.start + 12);
  const minf = one(mk, 'minf', `${where} mdia`);
  const nk = children(b, minf.start, minf.end, `${where} minf`);
  const stbl = one(nk, 'stbl', `${where} minf`);
  const sw = `${where} stbl`;
  const sk = children(b, stbl.start, stbl.end, sw);

  const stsd = one(sk, 'stsd', sw);
  const sd = full(b, stsd, 4, `${sw} stsd`);
  if (b.readUInt32BE(sd.at) !== 1) fail(`${sw}: stsd has ${b.readUInt32BE(sd.at)} entries`);
  const entries = children(b, sd.at + 4, stsd.end, `${sw} stsd`);
  if (entries.length !== 1) fail(`${sw}: stsd holds ${entries.length} boxes`);
  const entry = entries[0]!;
  const codec = entry.type;
  if (codec === 'avc1') checkAvc1(b, entry, `${sw} avc1`);

  // stts: the decode times.
  const stts = one(sk, 'stts', sw);
  const st = full(b, stts, 4, `${sw} stts`);
  const sttsN = table(b, stts, st.at, 8, `${sw} stts`);
  const dts: number[] = [];
  let t = 0;
  for (let i = 0; i < sttsN; i++) {
    const count = b.readUInt32BE(st.at + 4 + i * 8);
    const delta = b.readUInt32BE(st.at + 8 + i * 8);
    if (count === 0) fail(`${sw}: stts entry ${i} with no samples`);
    if (delta === 0) fail(`${sw}: stts entry ${i}: a sample of duration 0`);
    for (let k = 0; k < count; k++) {
      dts.push(t);
      t += delta;
    }
  }
  const n = dts.length;

  const stsz = one(sk, 'stsz', sw);
  const sz = full(b, stsz, 8, `${sw} stsz`);
  const fixed = b.readUInt32BE(sz.at);
  const stszN = b.readUInt32BE(sz.at + 4);
  if (stszN !== n) fail(`${sw}: stsz counts ${stszN} samples, stts ${n}`);
  if (fixed === 0 && sz.at + 8 + n * 4 > stsz.end) fail(`${sw}: stsz is cut off`);
  const size = (i: number) => (fixed !== 0 ? fixed : b.readUInt32BE(sz.at + 8 + i * 4));

  const cts = new Array<number>(n).fill(0);
  const ctts = optional(sk, 'ctts', sw);
  if (ctts) {
    const ch = full(b, ctts, 4, `${sw} ctts`);
    const m = table(b, ctts, ch.at, 8, `${sw} ctts`);
    let i = 0;
    for (let e = 0; e < m; e++) {
      const count = b.readUInt32BE(ch.at + 4 + e * 8);
      const offset = ch.version === 1 ? b.readInt32BE(ch.at + 8 + e * 8) : b.readUInt32BE(ch.at + 8 + e * 8);
      for (let k = 0; k < count; k++, i++) if (i < n) cts[i] = offset;
    }
    if (i !== n) fail(`${sw}: ctts counts ${i} samples, stts ${n}`);
  }

  const sync = new Array<boolean>(n).fill(true);
  const stss = optional(sk, 'stss', sw);
  if (stss) {
    sync.fill(false);
    const sh = full(b, stss, 4, `${sw} stss`);
    const m = table(b, stss, sh.at, 4, `${sw} stss`);
    let last = 0;
    for (let e = 0; e < m; e++) {
      const s = b.readUInt32BE(sh.at + 4 + e * 4);
      if (s < 1 || s > n) fail(`${sw}: stss entry ${s} out of 1..${n}`);
      if (s <= last) fail(`${sw}: stss entries not increasing (${last}, ${s})`);
      last = s;
      sync[s - 1] = true;
    }
  }

  const stco = optional(sk, 'stco', sw);
  const co64 = optional(sk, 'co64', sw);
  if ((stco ? 1 : 0) + (co64 ? 1 : 0) !== 1) fail(`${sw}: not exactly one of stco and co64`);
  const co = (stco ?? co64)!;
  const ch = full(b, co, 4, `${sw} ${co.type}`);
  const wide = co.type === 'co64';
  const chunks = table(b, co, ch.at, wide ? 8 : 4, `${sw} ${co.type}`);
  const chunkOffset = (c: number) =>
    wide ? Number(b.readBigUInt64BE(ch.at + 4 + c * 8)) : b.readUInt32BE(ch.at + 4 + c * 4);

  const stsc = one(sk, 'stsc', sw);
  const sc = full(b, stsc, 4, `${sw} stsc`);
  const runs = table(b, stsc, sc.at, 12, `${sw} stsc`);
  if (chunks > 0 && runs === 0) fail(`${sw}: chunks but no stsc entries`);
  const perChunk: number[] = [];
  for (let r = 0; r < runs; r++) {
    const first = b.readUInt32BE(sc.at + 4 + r * 12);
    const count = b.readUInt32BE(sc.at + 8 + r * 12);
    const desc = b.readUInt32BE(sc.at + 12 + r * 12);
    const nextFirst = r + 1 < runs ? b.readUInt32BE(sc.at + 16 + r * 12) : chunks + 1;
    if (r === 0 && first !== 1) fail(`${sw}: stsc starts at chunk ${first}`);
    if (nextFirst <= first || nextFirst > chunks + 1)
      fail(`${sw}: stsc run ${r} covers chunks ${first}..${nextFirst}`);
    if (count === 0) fail(`${sw}: stsc run ${r} has chunks of no samples`);
    if (desc !== 1) fail(`${sw}: stsc sample_description_index ${desc}`);
    for (let c = first; c < nextFirst; c++) perChunk.push(count);
  }
  const total = perChunk.reduce((a, x) => a + x, 0);
  if (total !== n) fail(`${sw}: stsc places ${total} samples in ${chunks} chunks, stts has ${n}`);

  const samples: Mp4Sample[] = [];
  let i = 0;
  for (let c = 0; c < chunks; c++) {
    let at = chunkOffset(c);
    for (let k = 0; k < perChunk[c]!; k++, i++) {
      const s = size(i);
      if (at < mdat[0] || at + s > mdat[1]) {
        fail(`${sw}: sample ${i + 1} at [${at}, ${at + s}) lies outside the mdat [${mdat[0]}, ${mdat[1]})`);
      }
      samples.push({ offset: at, size: s, dts: dts[i]!, cts: cts[i]!, sync: sync[i]! });
      at += s;
    }
  }
  if (codec === 'avc1') {
    for (const [k, s] of samples.entries()) checkNals(b, s, `${sw} sample ${k + 1}`);
  }
  return { id, handler, codec, timescale, duration, edits, samples };
}

/** avc1: a visual sample entry with an avcC that holds at least one SPS and one PPS. */
function checkAvc1(b: Buffer, entry: Box, where: string): void {
  if (entry.end - entry.start < 78) fail(`${where}: too short`);
  if (b.readUInt16BE(entry.start + 24) === 0 || b.readUInt16BE(entry.start + 26) === 0) {
    fail(`${where}: no picture size`);
  }
  const avcC = one(children(b, entry.start + 78, entry.end, where), 'avcC', where);
  const at = avcC.start;
  if (avcC.end - at < 7 || b[at] !== 1) fail(`${where}: avcC version ${b[at]}`);
  if ((b[at + 4]! & 3) !== 3) fail(`${where}: NAL length size ${(b[at + 4]! & 3) + 1}, expected 4`);
  let p = at + 5;
  const sps = b[p++]! & 0x1f;
  if (sps === 0) fail(`${where}: no SPS in avcC`);
  for (let k = 0; k < sps; k++) {
    if (p + 2 > avcC.end) fail(`${where}: avcC cut off`);
    p += 2 + b.readUInt16BE(p);
  }
  if (p >= avcC.end) fail(`${where}: avcC cut off before its PPS`);
  const pps = b[p++]!;
  if (pps === 0) fail(`${where}: no PPS in avcC`);
  for (let k = 0; k < pps; k++) {
    if (p + 2 > avcC.end) fail(`${where}: avcC cut off`);
    p += 2 + b.readUInt16BE(p);
  }
  if (p > avcC.end) fail(`${where}: avcC PPS runs past its end`);
}

/** A sample of 4-byte length-prefixed NAL units, filling it exactly. */
function checkNals(b: Buffer, s: Mp4Sample, where: string): void {
  const end = s.offset + s.size;
  let at = s.offset;
  if (s.size === 0) fail(`${where}: empty`);
  while (at < end) {
    if (at + 4 > end) fail(`${where}: a NAL length cut off`);
    const n = b.readUInt32BE(at);
    if (n === 0) fail(`${where}: a NAL unit of length 0`);
    if (at + 4 + n > end) fail(`${where}: a NAL unit of ${n} bytes runs past the sample`);
    at += 4 + n;
  }
}

/** Reads and checks an MP4 file's structure; throws Mp4Invalid with what is wrong. */
export function readMp4(b: Buffer): Mp4File {
  const top = children(b, 0, b.length, 'file');
  const boxes = top.map((x) => x.type);
  if (boxes[0] !== 'ftyp') fail(`file starts with '${boxes[0]}', not ftyp`);
  const moov = one(top, 'moov', 'file');
  const mdatBox = one(top, 'mdat', 'file');
  const mdat: [number, number] = [mdatBox.start, mdatBox.end];
  const mk = children(b, moov.start, moov.end, 'moov');
  const mvhd = one(mk, 'mvhd', 'moov');
  const mv = full(b, mvhd, 96, 'mvhd');
  const wide = mv.version === 1;
  const movieScale = b.readUInt32BE(mv.at + (wide ? 16 : 8));
  const movieDuration = wide ? Number(b.readBigUInt64BE(mv.at + 20)) : b.readUInt32BE(mv.at + 12);
  const nextTrack = b.readUInt32BE(mvhd.end - 4);
  if (movieScale === 0) fail('mvhd timescale 0');
  if (!(movieDuration > 0)) fail(`mvhd duration ${movieDuration}`);
  const traks = mk.filter((x) => x.type === 'trak');
  if (traks.length === 0) fail('moov has no trak');
  const tracks = traks.map((t, i) => readTrack(b, t, mdat, i));
  const ids = new Set(tracks.map((t) => t.id));
  if (ids.size !== tracks.length) fail('two traks with one track_ID');
  for (const id of ids) if (id >= nextTrack) fail(`track_ID ${id} >= next_track_ID ${nextTrack}`);
  for (const t of tracks) if (t.samples.length === 0) fail(`track ${t.id} has no samples`);
  return { boxes, tracks, mdat };
}

/**
 * One line per track of what its samples are (times, sizes, sync flags, and a hash of their bytes):
 * equal for two files that hold the same samples, whatever their layout in the mdat.
 */
export function sampleSummary(b: Buffer, f: Mp4File): string[] {
  return f.tracks.map((t) => {
    const hash = createHash('sha1');
    const times: string[] = [];
    for (const s of t.samples) {
      hash.update(b.subarray(s.offset, s.offset + s.size));
      times.push(`${s.dts}/${s.cts}/${s.size}${s.sync ? 'k' : ''}`);
    }
    const edits = t.edits.map((e) => e.join(':')).join(' ');
    return `${t.handler} ${t.codec} ${t.timescale} ${t.duration} [${edits}] ${hash.digest('hex')} ${times.join(',')}`;
  });
}
