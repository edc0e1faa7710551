/**
 * The first presentation timestamp in the start of a track (pure), on the 90 kHz clock that WebVTT's
 * X-TIMESTAMP-MAP refers to (RFC 8216 3.5). ffmpeg starts the MP4's timeline at the earliest stream
 * of an input, so subtitles are placed relative to the smallest first PTS of any stream in the main
 * track's first segment.
 *
 * MPEG-TS: PAT, then PMT, then the first PES of each elementary stream (ISO/IEC 13818-1 2.4.3, 2.4.4,
 * 2.5.4). fMP4: the first `tfdt` decode time, scaled by its track's `mdhd` timescale (ISO/IEC 14496-12
 * 8.8.12, 8.4.2), which is how HLS maps fMP4 media to the same clock (RFC 8216 3.5).
 */

const PACKET = 188;

/** A 33-bit PES timestamp (PTS or DTS) at `at` (13818-1 2.4.3.7). */
export function readPts(b: Buffer, at: number): number {
  // 33 bits in five bytes with marker bits: 0010 xxx1 xxxxxxxx xxxxxxx1 xxxxxxxx xxxxxxx1.
  return (
    ((b[at]! >> 1) & 0x07) * 2 ** 30 +
    ((b[at + 1]! << 7) | (b[at + 2]! >> 1)) * 2 ** 15 +
    ((b[at + 3]! << 7) | (b[at + 4]! >> 1))
  );
}

/** PIDs of the audio and video streams of the first program, from the PMT section at `at`. */
function streamsOfPmt(b: Buffer, at: number, end: number): number[] {
  const sectionLength = ((b[at + 1]! & 0x0f) << 8) | b[at + 2]!;
  const programInfoLength = ((b[at + 10]! & 0x0f) << 8) | b[at + 11]!;
  const pids: number[] = [];
  const last = Math.min(end, at + 3 + sectionLength - 4); // without the CRC
  for (let i = at + 12 + programInfoLength; i + 5 <= last; ) {
    pids.push(((b[i + 1]! & 0x1f) << 8) | b[i + 2]!);
    i += 5 + (((b[i + 3]! & 0x0f) << 8) | b[i + 4]!);
  }
  return pids;
}

/** The smallest first PTS over the elementary streams of an MPEG-TS start, or null. */
export function firstTsPts(b: Buffer): number | null {
  let pmtPid = -1;
  let streams: number[] | null = null;
  const first = new Map<number, number>();
  for (let p = b.indexOf(0x47); p >= 0 && p + PACKET <= b.length; p += PACKET) {
    if (b[p] !== 0x47) break;
    const pusi = (b[p + 1]! & 0x40) !== 0;
    const pid = ((b[p + 1]! & 0x1f) << 8) | b[p + 2]!;
    const afc = (b[p + 3]! >> 4) & 0x03;
    let at = p + 4;
    if (afc === 2) continue; // adaptation field only
    if (afc === 3) at += 1 + b[at]!;
    if (at >= p + PACKET || !pusi) continue;
    if (pid === 0 && pmtPid < 0) {
      const s = at + 1 + b[at]!; // pointer field
      if (s + 12 <= p + PACKET) pmtPid = ((b[s + 10]! & 0x1f) << 8) | b[s + 11]!;
    } else if (pid === pmtPid && streams === null) {
      streams = streamsOfPmt(b, at + 1 + b[at]!, p + PACKET);
    } else if (streams?.includes(pid) && !first.has(pid)) {
      // PES: start code 00 00 01, stream id, length, flags; PTS present when PTS_DTS_flags has bit 2.
      if (b[at] !== 0 || b[at + 1] !== 0 || b[at + 2] !== 1 || at + 14 > p + PACKET) continue;
      if ((b[at + 7]! & 0x80) !== 0) first.set(pid, readPts(b, at + 9));
      if (first.size === streams.length) break;
    }
  }
  return first.size === 0 ? null : Math.min(...first.values());
}

/** Top-level or nested box of `type` inside [from, to), as [payload start, box end], or null. */
function findBox(b: Buffer, type: string, from: number, to: number): [number, number] | null {
  for (let at = from; at + 8 <= to; ) {
    let size = b.readUInt32BE(at);
    let header = 8;
    if (size === 1 && at + 16 <= to) {
      size = Number(b.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) size = to - at;
    if (size < header) return null;
    if (b.toString('latin1', at + 4, at + 8) === type) return [at + header, Math.min(at + size, to)];
    at += size;
  }
  return null;
}

function inside(b: Buffer, path: string[], from = 0, to = b.length): [number, number] | null {
  let range: [number, number] | null = [from, to];
  for (const type of path) {
    range = findBox(b, type, range[0], range[1]);
    if (!range) return null;
  }
  return range;
}

/** The composition time offset of a `trun`'s first sample (0 when it carries none), 8.8.8. */
function firstCompositionOffset(b: Buffer, trun: [number, number]): number {
  const [at, end] = trun;
  const version = b[at]!;
  const flags = b.readUIntBE(at + 1, 3);
  if ((flags & 0x800) === 0) return 0;
  let i = at + 8; // version/flags, sample_count
  if (flags & 0x1) i += 4; // data_offset
  if (flags & 0x4) i += 4; // first_sample_flags
  if (flags & 0x100) i += 4; // sample_duration
  if (flags & 0x200) i += 4; // sample_size
  if (flags & 0x400) i += 4; // sample_flags
  if (i + 4 > end) return 0;
  return version === 0 ? b.readUInt32BE(i) : b.readInt32BE(i);
}

/** The first presentation time of an fMP4 start (init section + first fragment), in 90 kHz ticks. */
export function firstFmp4Pts(b: Buffer): number | null {
  const mdhd = inside(b, ['moov', 'trak', 'mdia', 'mdhd']);
  const traf = inside(b, ['moof', 'traf']);
  const tfdt = traf && findBox(b, 'tfdt', traf[0], traf[1]);
  if (!mdhd || !traf || !tfdt) return null;
  const mdhdV1 = b[mdhd[0]] === 1;
  const timescale = b.readUInt32BE(mdhd[0] + (mdhdV1 ? 20 : 12));
  const tfdtV1 = b[tfdt[0]] === 1;
  const base = tfdtV1 ? Number(b.readBigUInt64BE(tfdt[0] + 4)) : b.readUInt32BE(tfdt[0] + 4);
  const trun = findBox(b, 'trun', traf[0], traf[1]);
  const offset = trun ? firstCompositionOffset(b, trun) : 0;
  return timescale > 0 ? Math.round(((base + offset) * 90000) / timescale) : null;
}
