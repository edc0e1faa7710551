/**
 * One movie fragment of fMP4 (ISO/IEC 14496-12 8.8.4-8.8.12): a moof's track fragments (tfhd
 * defaults, tfdt base decode time, one or more trun) turned into samples with their decode time,
 * composition offset (signed in trun version 1), duration, size, sync flag and where their bytes are,
 * checked to lie inside the mdat that follows. Pure: throws on a fragment it cannot read.
 */

import type { TrexDefaults } from './fmp4-init.js';
import { type Box, child, children, flags, payload, readTime, version } from './mp4-box-reader.js';

/** The samples of one track fragment, as parallel columns. */
export interface TrackRun {
  trackId: number;
  /** tfdt's baseMediaDecodeTime, or null (then the track's samples follow on from the last ones). */
  baseTime: number | null;
  durations: number[];
  sizes: number[];
  cts: number[];
  sync: boolean[];
  /** Offsets of each sample's first byte in the buffer the moof and its mdat were read from. */
  offsets: number[];
}

const TFHD_BASE_OFFSET = 0x1;
const TFHD_DESCRIPTION = 0x2;
const TFHD_DURATION = 0x8;
const TFHD_SIZE = 0x10;
const TFHD_FLAGS = 0x20;
const TFHD_BASE_IS_MOOF = 0x20000;
const TRUN_DATA_OFFSET = 0x1;
const TRUN_FIRST_FLAGS = 0x4;
const TRUN_DURATION = 0x100;
const TRUN_SIZE = 0x200;
const TRUN_FLAGS = 0x400;
const TRUN_CTS = 0x800;
/** sample_is_non_sync_sample in the sample flags (8.8.3.1). */
const NON_SYNC = 0x10000;

interface Defaults {
  duration: number;
  size: number;
  flags: number;
}

function readTfhd(b: Buffer, tfhd: Box, trex: (id: number) => TrexDefaults | undefined) {
  const f = flags(b, tfhd);
  let at = payload(tfhd, true);
  const u32 = (fallback: number, present = true) => {
    if (!present) return fallback;
    at += 4;
    return b.readUInt32BE(at - 4);
  };
  const trackId = u32(0);
  const base = trex(trackId);
  if (f & TFHD_BASE_OFFSET) throw new Error('an absolute base_data_offset (not CMAF)');
  const description = u32(base?.descriptionIndex ?? 1, (f & TFHD_DESCRIPTION) !== 0);
  if (description > 1) throw new Error('samples of a second sample description');
  const d: Defaults = {
    duration: u32(base?.duration ?? 0, (f & TFHD_DURATION) !== 0),
    size: u32(base?.size ?? 0, (f & TFHD_SIZE) !== 0),
    flags: u32(base?.flags ?? 0, (f & TFHD_FLAGS) !== 0),
  };
  return { trackId, defaults: d, baseIsMoof: (f & TFHD_BASE_IS_MOOF) !== 0 };
}

/**
 * Samples a fragment may list beyond one per byte of its mdat. A trun whose samples take their size
 * from the defaults is a 4-byte count with nothing behind it: 0xFFFFFFFF of them were appended one by
 * one before the bounds check (a 100-byte fragment ran the process out of memory). Real samples take
 * bytes; a few empty ones (a text track's gap) fit in this slack.
 */
const EMPTY_SAMPLE_SLACK = 4096;

/**
 * Appends the samples of one trun; returns where its data ends (the next trun's default start).
 * `budget.left` is how many more samples the fragment may list.
 */
function readTrun(
  b: Buffer,
  trun: Box,
  d: Defaults,
  dataStart: number,
  moofStart: number,
  out: TrackRun,
  budget: { left: number },
): number {
  const f = flags(b, trun);
  const signed = version(b, trun) === 1;
  let at = payload(trun, true);
  const u32 = (fallback: number, present: number) => {
    if (!present) return fallback;
    at += 4;
    return b.readUInt32BE(at - 4);
  };
  const count = u32(0, 1);
  let data = dataStart;
  if (f & TRUN_DATA_OFFSET) data = moofStart + (u32(0, 1) | 0);
  const first = f & TRUN_FIRST_FLAGS ? u32(0, 1) : null;
  const per = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS].filter((x) => f & x).length * 4;
  if (at + count * per > trun.start + trun.size) throw new Error('a trun shorter than its sample count');
  if (count > budget.left) throw new Error(`a trun of ${count} samples, more than its mdat can hold`);
  budget.left -= count;
  for (let i = 0; i < count; i++) {
    const duration = u32(d.duration, f & TRUN_DURATION);
    const size = u32(d.size, f & TRUN_SIZE);
    const sampleFlags = u32(i === 0 && first !== null ? first : d.flags, f & TRUN_FLAGS);
    const raw = u32(0, f & TRUN_CTS);
    const cts = signed ? raw | 0 : raw;
    out.durations.push(duration);
    out.sizes.push(size);
    out.cts.push(cts);
    out.sync.push((sampleFlags & NON_SYNC) === 0);
    out.offsets.push(data);
    data += size;
  }
  return data;
}

/**
 * The track fragments of the moof at `moof` in `b`, whose samples must lie in [dataFrom, dataTo)
 * (the mdat's payload). `trex` gives the init segment's defaults of a track.
 */
export function readFragment(
  b: Buffer,
  moof: Box,
  dataFrom: number,
  dataTo: number,
  trex: (id: number) => TrexDefaults | undefined,
): TrackRun[] {
  const runs: TrackRun[] = [];
  let previousEnd = moof.start;
  const budget = { left: Math.max(0, dataTo - dataFrom) + EMPTY_SAMPLE_SLACK };
  for (const traf of children(b, moof)) {
    if (traf.type !== 'traf') continue;
    const tfhd = child(b, traf, 'tfhd');
    if (!tfhd) throw new Error('a traf without its tfhd');
    const { trackId, defaults, baseIsMoof } = readTfhd(b, tfhd, trex);
    const tfdt = child(b, traf, 'tfdt');
    const out: TrackRun = {
      trackId,
      baseTime: tfdt ? readTime(b, payload(tfdt, true), version(b, tfdt) === 1) : null,
      durations: [],
      sizes: [],
      cts: [],
      sync: [],
      offsets: [],
    };
    // Without default-base-is-moof a traf's data follows the previous traf's (8.8.7.1).
    let data = baseIsMoof || runs.length === 0 ? moof.start : previousEnd;
    for (const x of children(b, traf)) {
      if (x.type === 'trun') data = readTrun(b, x, defaults, data, moof.start, out, budget);
      else if (x.type === 'senc') throw new Error('encrypted samples (senc)');
    }
    previousEnd = data;
    for (let i = 0; i < out.sizes.length; i++) {
      const from = out.offsets[i]!;
      if (from < dataFrom || from + out.sizes[i]! > dataTo) throw new Error('a sample outside its mdat');
    }
    runs.push(out);
  }
  return runs;
}
