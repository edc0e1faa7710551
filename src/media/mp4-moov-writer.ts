/**
 * The moov of a plain (not fragmented) MP4 that Gabe writes itself (ISO/IEC 14496-12 and 14496-14,
 * 14496-15 for avc1), built at the end from the tracks' sample tables: mvhd, and per track tkhd,
 * edts/elst, mdia and the stbl. Pure: no I/O.
 */

import { type FileTags, udtaBox } from './file-tags.js';
import { packLanguage } from './language.js';
import { box, type Container, container, fullBox, u32be, u64be, versioned } from './mp4-box-writer.js';
import { type AudioEntry, avc1, mp4aFor, type VerbatimEntry, type VideoEntry } from './mp4-sample-entries.js';
import type { SampleTable } from './mp4-sample-table.js';

const MATRIX = u32be(0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000);

export interface TrackBuild {
  id: number;
  timescale: number;
  entry: VideoEntry | AudioEntry | VerbatimEntry;
  table: SampleTable;
  /** Track ticks from the first sample's decode time to the first presented instant. */
  mediaStart: number;
  /** Track ticks presented: from the first instant shown to the end of the last frame. */
  shown: number;
  /** Movie ticks (1/1000 s, fractional) of nothing before the track starts (an empty edit). */
  delay: number;
  /** ISO 639-2/T code ('und' when unknown). */
  language: string;
}

export const MOVIE_TIMESCALE = 1000;

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

const isVideo = (t: TrackBuild) => t.entry.kind === 'video' || (t.entry.kind === 'verbatim' && t.entry.video);

function stbl(t: TrackBuild, chunkBase: number): Container {
  const s = t.table;
  const n = s.count;
  const parts: Buffer[] = [];
  const durations = s.durationRuns();
  const e = t.entry;
  const entry =
    e.kind === 'video'
      ? avc1(e)
      : e.kind === 'verbatim'
        ? e.box
        : mp4aFor(e, t.id, s, durations, t.timescale);
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
  if (isVideo(t) && syncs < n) {
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
  const video = isVideo(t);
  // tkhd's size is 16.16 fixed point; a verbatim entry brings the init segment's as it was.
  const width = e.kind === 'video' ? Math.round((e.width * e.sarWidth) / e.sarHeight) * 0x10000 : 0;
  const height = e.kind === 'video' ? e.height * 0x10000 : 0;
  const size = e.kind === 'verbatim' ? [e.width, e.height] : [width, height];

  const dur = versioned([times.total]);
  const tkhdBody = Buffer.concat([
    dur.version === 1 ? Buffer.concat([u64be(0), u64be(0)]) : u32be(0, 0),
    u32be(t.id, 0),
    dur.body,
    u32be(0, 0),
    Buffer.from([0, 0, 0, video ? 0 : 1, video ? 0 : 1, 0, 0, 0]), // layer, alternate_group, volume, reserved
    MATRIX,
    u32be(size[0]!, size[1]!),
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
 * The moov for the tracks (and the file's tags, in udta after them, where ffmpeg puts them); chunk offsets in the tables are relative to the first media byte, which is
 * at `dataStart` in the file.
 */
export function buildMoov(tracks: readonly TrackBuild[], dataStart: number, tags?: FileTags): Buffer {
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
  const udta = udtaBox(tags);
  const moov = container('moov', mvhd, ...tracks.map((t) => trak(t, dataStart)), ...(udta ? [udta] : []));
  return Buffer.concat(moov.parts, moov.length);
}
