/**
 * The boxes of a plain (not fragmented) MP4 that Gabe writes itself (ISO/IEC 14496-12 and 14496-14,
 * 14496-15 for avc1): the sample tables collected while the media is written, and the moov built from
 * them at the end. Pure: no I/O.
 */

const BLOCK = 16 * 1024;

/**
 * A growable column of numbers (sample sizes, chunk offsets) in fixed blocks: no JS array entry per
 * value, and growing never copies (a doubling array would hold both copies for a moment).
 */
class Column<T extends Float64Array | Uint32Array | Int32Array> {
  length = 0;
  private readonly blocks: T[] = [];
  constructor(private readonly make: (n: number) => T) {}
  push(v: number): void {
    const i = this.length & (BLOCK - 1);
    if (i === 0) this.blocks.push(this.make(BLOCK));
    this.blocks[this.blocks.length - 1]![i] = v;
    this.length++;
  }
  at(i: number): number {
    return this.blocks[Math.floor(i / BLOCK)]![i & (BLOCK - 1)]!;
  }
}

const f64 = (n: number) => new Float64Array(n);
const u32 = (n: number) => new Uint32Array(n);
const i32 = (n: number) => new Int32Array(n);

/**
 * One track's samples as the moov needs them, kept small for long streams: sizes (4 bytes a sample),
 * durations as runs (stts), composition offsets only once one is not zero (ctts), sync samples as a
 * list (stss), and the chunks.
 */
export class SampleTable {
  readonly sizes = new Column(u32);
  /** Composition offsets; null while every one so far is 0. */
  cts: Column<Int32Array> | null = null;
  readonly syncs = new Column(u32);
  readonly chunkOffsets = new Column(f64);
  readonly chunkSamples = new Column(u32);
  /** (count, duration) runs of the durations known so far: all samples but the last. */
  private readonly deltas: number[] = [];
  bytes = 0;
  firstDts = 0;
  lastDts = 0;
  /** Duration of the last sample, which no later timestamp gives. */
  lastDuration = 0;

  get count(): number {
    return this.sizes.length;
  }

  /** The duration of the sample before the last (what a last sample is given), or 0. */
  get lastDelta(): number {
    return this.deltas.length > 0 ? this.deltas[this.deltas.length - 1]! : 0;
  }

  add(size: number, dts: number, cts: number, sync: boolean): void {
    const n = this.count;
    if (n === 0) this.firstDts = dts;
    else {
      const d = dts - this.lastDts;
      const runs = this.deltas;
      if (runs.length > 0 && runs[runs.length - 1] === d) runs[runs.length - 2]!++;
      else runs.push(1, d);
    }
    this.lastDts = dts;
    this.sizes.push(size);
    if (cts !== 0 && !this.cts) {
      this.cts = new Column(i32);
      for (let i = 0; i < n; i++) this.cts.push(0);
    }
    this.cts?.push(cts);
    if (sync) this.syncs.push(n + 1);
    this.bytes += size;
  }

  /** Samples [first, count) were written contiguously at `offset`. */
  addChunk(offset: number, samples: number): void {
    if (samples > 0) {
      this.chunkOffsets.push(offset);
      this.chunkSamples.push(samples);
    }
  }

  /** (count, duration) runs of every sample's duration, the last one's included. */
  durationRuns(): number[] {
    if (this.count === 0) return [];
    const runs = this.deltas.map((v, i) => (i % 2 === 1 ? Math.round(v) : v));
    const last = Math.round(this.lastDuration);
    if (runs.length > 0 && runs[runs.length - 1] === last) runs[runs.length - 2]!++;
    else runs.push(1, last);
    return runs;
  }

  /** Sum of the sample durations: the media's length in track ticks. */
  get mediaDuration(): number {
    return this.count === 0 ? 0 : this.lastDts - this.firstDts + this.lastDuration;
  }
}

export function box(type: string, ...payload: Buffer[]): Buffer {
  let size = 8;
  for (const p of payload) size += p.length;
  const head = Buffer.alloc(8);
  head.writeUInt32BE(size);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, ...payload], size);
}

/** A container box kept as its parts: nesting copies nothing; the moov is joined once at the end. */
interface Container {
  length: number;
  parts: Buffer[];
}

function container(type: string, ...children: (Buffer | Container)[]): Container {
  const head = Buffer.alloc(8);
  const parts: Buffer[] = [head];
  let length = 8;
  for (const c of children) {
    if (Buffer.isBuffer(c)) parts.push(c);
    else parts.push(...c.parts);
    length += c.length;
  }
  head.writeUInt32BE(length);
  head.write(type, 4, 'latin1');
  return { length, parts };
}

function fullBox(type: string, version: number, flags: number, ...payload: Buffer[]): Buffer {
  const vf = Buffer.alloc(4);
  vf.writeUInt32BE(((version & 0xff) << 24) | (flags & 0xffffff));
  return box(type, vf, ...payload);
}

function u32be(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => {
    b.writeUInt32BE(v >>> 0, i * 4);
  });
  return b;
}

function u64be(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(Math.round(v)));
  return b;
}

/**
 * The header of a `free` box of `size` bytes in all: the padding after it is left as it is in the
 * file (a hole reads as zeros), so reserving 20 MB for a long stream's moov costs no 20 MB buffer.
 */
export function freeHeader(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(size);
  b.write('free', 4, 'latin1');
  return b;
}

/** A 64-bit `mdat` header (size 1 + largesize), so a stream past 4 GB needs no other layout. */
export const MDAT_HEADER = 16;

export function mdatHeader(dataBytes: number): Buffer {
  const b = Buffer.alloc(MDAT_HEADER);
  b.writeUInt32BE(1);
  b.write('mdat', 4, 'latin1');
  b.writeBigUInt64BE(BigInt(dataBytes + MDAT_HEADER), 8);
  return b;
}

/** The brands ffmpeg's mp4 muxer writes, so players treat both files alike. */
export function ftyp(): Buffer {
  return box('ftyp', Buffer.from('isom', 'latin1'), u32be(0x200), Buffer.from('isomiso2avc1mp41', 'latin1'));
}

const MATRIX = u32be(0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000);

/** ISO 639-2/T code packed into 15 bits (14496-12 8.4.2.3). */
function packLanguage(code: string): number {
  const c = /^[a-z]{3}$/.test(code) ? code : 'und';
  return ((c.charCodeAt(0) - 0x60) << 10) | ((c.charCodeAt(1) - 0x60) << 5) | (c.charCodeAt(2) - 0x60);
}

export interface VideoEntry {
  kind: 'video';
  width: number;
  height: number;
  sarWidth: number;
  sarHeight: number;
  avcC: Buffer;
}

export interface AudioEntry {
  kind: 'audio';
  sampleRate: number;
  channels: number;
  /** AudioSpecificConfig. */
  asc: Buffer;
}

export interface TrackBuild {
  id: number;
  timescale: number;
  entry: VideoEntry | AudioEntry;
  table: SampleTable;
  /** Track ticks from the first sample's decode time to the first presented instant. */
  mediaStart: number;
  /** Track ticks presented: from the first instant shown to the end of the last frame. */
  shown: number;
  /** Movie ticks (1/1000 s, fractional) of nothing before the track starts (an empty edit). */
  delay: number;
  language: string;
}

export const MOVIE_TIMESCALE = 1000;

function avc1(e: VideoEntry): Buffer {
  const body = Buffer.alloc(78);
  body.writeUInt16BE(1, 6); // data_reference_index
  body.writeUInt16BE(e.width, 24);
  body.writeUInt16BE(e.height, 26);
  body.writeUInt32BE(0x480000, 28); // 72 dpi
  body.writeUInt32BE(0x480000, 32);
  body.writeUInt16BE(1, 40); // frame_count
  body.writeUInt16BE(0x18, 74); // depth
  body.writeInt16BE(-1, 76);
  const extra = [box('avcC', e.avcC)];
  if (e.sarWidth !== e.sarHeight) extra.push(box('pasp', u32be(e.sarWidth, e.sarHeight)));
  return box('avc1', body, ...extra);
}

/** An MPEG-4 descriptor: tag, then its size in the 4-byte expandable form ffmpeg writes. */
function descriptor(tag: number, ...payload: Buffer[]): Buffer {
  const size = payload.reduce((n, p) => n + p.length, 0);
  const head = Buffer.from([
    tag,
    0x80 | ((size >> 21) & 0x7f),
    0x80 | ((size >> 14) & 0x7f),
    0x80 | ((size >> 7) & 0x7f),
    size & 0x7f,
  ]);
  return Buffer.concat([head, ...payload]);
}

function mp4a(e: AudioEntry, id: number, avgBitrate: number, maxBitrate: number): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 6);
  body.writeUInt16BE(e.channels, 16);
  body.writeUInt16BE(16, 18);
  body.writeUInt32BE(e.sampleRate <= 0xffff ? e.sampleRate * 0x10000 : 0, 24);
  const decoderConfig = Buffer.alloc(13);
  decoderConfig[0] = 0x40; // Audio ISO/IEC 14496-3
  decoderConfig[1] = 0x15; // stream type audio, upstream 0, reserved 1
  decoderConfig.writeUInt32BE(maxBitrate >>> 0, 5);
  decoderConfig.writeUInt32BE(avgBitrate >>> 0, 9);
  const es = descriptor(
    0x03,
    Buffer.from([id >> 8, id & 0xff, 0]), // ES_ID (the track's, as ffmpeg writes), flags
    descriptor(0x04, decoderConfig, descriptor(0x05, e.asc)),
    descriptor(0x06, Buffer.from([0x02])),
  );
  return box('mp4a', body, fullBox('esds', 0, 0, es));
}

/** Run-length pairs (count, value) of a per-sample value. */
function runs(n: number, value: (i: number) => number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = value(i);
    if (out.length > 0 && out[out.length - 1] === v) out[out.length - 2]!++;
    else out.push(1, v);
  }
  return out;
}

/** stts or ctts: entry count, then (sample_count, value) pairs; ctts version 1 has signed values. */
function pairsBox(type: string, version: number, pairs: number[]): Buffer {
  const b = Buffer.alloc(4 + pairs.length * 4);
  b.writeUInt32BE(pairs.length / 2);
  for (let i = 0; i < pairs.length; i++) {
    if (version === 1 && i % 2 === 1) b.writeInt32BE(pairs[i]!, 4 + i * 4);
    else b.writeUInt32BE(pairs[i]! >>> 0, 4 + i * 4);
  }
  return fullBox(type, version, 0, b);
}

function stbl(t: TrackBuild, chunkBase: number): Container {
  const s = t.table;
  const n = s.count;
  const parts: Buffer[] = [];
  const durations = s.durationRuns();
  const entry = t.entry.kind === 'video' ? avc1(t.entry) : mp4aFor(t.entry, t.id, s, durations, t.timescale);
  parts.push(fullBox('stsd', 0, 0, u32be(1), entry));
  parts.push(pairsBox('stts', 0, durations));
  const cts = s.cts;
  if (cts) {
    let negative = false;
    for (let i = 0; i < n && !negative; i++) negative = cts.at(i) < 0;
    parts.push(
      pairsBox(
        'ctts',
        negative ? 1 : 0,
        runs(n, (i) => cts.at(i)),
      ),
    );
  }
  const syncs = s.syncs.length;
  if (t.entry.kind === 'video' && syncs < n) {
    const stss = Buffer.alloc(4 + syncs * 4);
    stss.writeUInt32BE(syncs);
    for (let k = 0; k < syncs; k++) stss.writeUInt32BE(s.syncs.at(k), 4 + k * 4);
    parts.push(fullBox('stss', 0, 0, stss));
  }
  const chunks = s.chunkSamples.length;
  const stsc: number[] = [];
  for (let c = 0; c < chunks; c++) {
    const k = s.chunkSamples.at(c);
    if (stsc.length === 0 || stsc[stsc.length - 2] !== k) stsc.push(c + 1, k, 1);
  }
  const stscBody = Buffer.alloc(4 + stsc.length * 4);
  stscBody.writeUInt32BE(stsc.length / 3);
  stsc.forEach((v, i) => {
    stscBody.writeUInt32BE(v, 4 + i * 4);
  });
  parts.push(fullBox('stsc', 0, 0, stscBody));
  const stsz = Buffer.alloc(8 + n * 4);
  stsz.writeUInt32BE(0, 0);
  stsz.writeUInt32BE(n, 4);
  for (let i = 0; i < n; i++) stsz.writeUInt32BE(s.sizes.at(i), 8 + i * 4);
  parts.push(fullBox('stsz', 0, 0, stsz));
  const last = chunks > 0 ? s.chunkOffsets.at(chunks - 1) + chunkBase : 0;
  const wide = last + s.bytes > 0xffffffff;
  const stco = Buffer.alloc(4 + chunks * (wide ? 8 : 4));
  stco.writeUInt32BE(chunks);
  for (let c = 0; c < chunks; c++) {
    const off = s.chunkOffsets.at(c) + chunkBase;
    if (wide) stco.writeBigUInt64BE(BigInt(off), 4 + c * 8);
    else stco.writeUInt32BE(off, 4 + c * 4);
  }
  parts.push(fullBox(wide ? 'co64' : 'stco', 0, 0, stco));
  return container('stbl', ...parts);
}

/** The esds bit rates: the average, and the most bits in any one second of media. */
function mp4aFor(
  e: AudioEntry,
  id: number,
  s: SampleTable,
  runs: readonly number[],
  timescale: number,
): Buffer {
  const seconds = s.mediaDuration / timescale;
  const avg = seconds > 0 ? Math.round((s.bytes * 8) / seconds) : 0;
  let max = 0;
  let second = -1;
  let inSecond = 0;
  // Sample times from the duration runs: the table keeps no time per sample.
  let time = 0;
  for (let r = 0, i = 0; r < runs.length; r += 2) {
    for (let k = 0; k < runs[r]!; k++, i++) {
      const at = Math.floor(time / timescale);
      if (at !== second) {
        second = at;
        inSecond = 0;
      }
      inSecond += s.sizes.at(i);
      max = Math.max(max, inSecond * 8);
      time += runs[r + 1]!;
    }
  }
  return mp4a(e, id, avg, max);
}

function versioned(values: number[]): { version: number; body: Buffer } {
  return values.some((v) => v > 0xffffffff)
    ? { version: 1, body: Buffer.concat(values.map(u64be)) }
    : { version: 0, body: u32be(...values) };
}

/**
 * Edit and track durations in movie ticks, rounded as ffmpeg's mov muxer rounds them (the delay
 * down, durations up), so a player cuts neither the last frame nor the last audio samples.
 */
function movieTimes(t: TrackBuild): { delay: number; shown: number; total: number } {
  const shown = Math.max(0, t.shown);
  const delay = Math.max(0, Math.floor(t.delay + 1e-9));
  const shownMs = (shown * MOVIE_TIMESCALE) / t.timescale;
  return { delay, shown: Math.ceil(shownMs - 1e-9), total: Math.ceil(t.delay + shownMs - 1e-9) };
}

function trak(t: TrackBuild, chunkBase: number): Container {
  const s = t.table;
  const mediaDuration = Math.round(s.mediaDuration);
  const times = movieTimes(t);
  const shownMovie = times.shown;
  const e = t.entry;
  const video = e.kind === 'video';
  const width = e.kind === 'video' ? Math.round((e.width * e.sarWidth) / e.sarHeight) : 0;
  const height = e.kind === 'video' ? e.height : 0;

  const dur = versioned([times.total]);
  const tkhdBody = Buffer.concat([
    dur.version === 1 ? Buffer.concat([u64be(0), u64be(0)]) : u32be(0, 0),
    u32be(t.id, 0),
    dur.body,
    u32be(0, 0),
    Buffer.from([0, 0, 0, video ? 0 : 1, video ? 0 : 1, 0, 0, 0]), // layer, alternate_group, volume, reserved
    MATRIX,
    u32be(width * 0x10000, height * 0x10000),
  ]);
  const tkhd = fullBox('tkhd', dur.version, 3, tkhdBody);

  const edits: Buffer[] = [];
  const wideEdit = times.total > 0xffffffff;
  // segment_duration, media_time (signed, -1 = empty), media_rate 1.0 (8.6.6); 64-bit in version 1.
  const edit = (duration: number, mediaTime: number) => {
    const b = Buffer.alloc(wideEdit ? 20 : 12);
    if (wideEdit) {
      b.writeBigUInt64BE(BigInt(duration), 0);
      b.writeBigInt64BE(BigInt(mediaTime), 8);
    } else {
      b.writeUInt32BE(duration, 0);
      b.writeInt32BE(mediaTime, 4);
    }
    b.writeUInt32BE(0x10000, wideEdit ? 16 : 8);
    return b;
  };
  if (times.delay > 0) edits.push(edit(times.delay, -1));
  edits.push(edit(shownMovie, Math.round(t.mediaStart)));
  const elst = fullBox('elst', wideEdit ? 1 : 0, 0, u32be(edits.length), ...edits);

  const md = versioned([mediaDuration]);
  const mdhd = fullBox(
    'mdhd',
    md.version,
    0,
    md.version === 1 ? Buffer.concat([u64be(0), u64be(0)]) : u32be(0, 0),
    u32be(t.timescale),
    md.body,
    Buffer.from([packLanguage(t.language) >> 8, packLanguage(t.language) & 0xff, 0, 0]),
  );
  const handler = video ? 'vide' : 'soun';
  const hdlr = fullBox(
    'hdlr',
    0,
    0,
    u32be(0),
    Buffer.from(handler, 'latin1'),
    u32be(0, 0, 0),
    Buffer.from(video ? 'VideoHandler\0' : 'SoundHandler\0', 'latin1'),
  );
  const header = video ? fullBox('vmhd', 0, 1, Buffer.alloc(8)) : fullBox('smhd', 0, 0, Buffer.alloc(4));
  const dinf = box('dinf', fullBox('dref', 0, 0, u32be(1), fullBox('url ', 0, 1)));
  const minf = container('minf', header, dinf, stbl(t, chunkBase));
  return container('trak', tkhd, box('edts', elst), container('mdia', mdhd, hdlr, minf));
}

/**
 * The moov for the tracks; chunk offsets in the tables are relative to the first media byte, which is
 * at `dataStart` in the file.
 */
export function buildMoov(tracks: readonly TrackBuild[], dataStart: number): Buffer {
  let duration = 0;
  for (const t of tracks) duration = Math.max(duration, movieTimes(t).total);
  const d = versioned([duration]);
  const mvhd = fullBox(
    'mvhd',
    d.version,
    0,
    d.version === 1 ? Buffer.concat([u64be(0), u64be(0)]) : u32be(0, 0),
    u32be(MOVIE_TIMESCALE),
    d.body,
    u32be(0x10000),
    Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // volume 1.0, reserved
    MATRIX,
    Buffer.alloc(24), // pre_defined
    u32be(tracks.length + 1),
  );
  const moov = container('moov', mvhd, ...tracks.map((t) => trak(t, dataStart)));
  return Buffer.concat(moov.parts, moov.length);
}
