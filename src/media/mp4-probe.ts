/**
 * A quick structural check of an MP4 (ISO/IEC 14496-12) on disk, without starting ffprobe: the
 * top-level boxes must chain exactly to the end of the file, with a `moov` (its `mvhd` duration and
 * each `trak`'s handler and size) and an `mdat`. A plain MP4 download ends with this check, which is
 * ~100 ms cheaper than an ffprobe process; anything it does not recognise goes to ffprobe as before.
 */
import { open } from 'node:fs/promises';
import type { ProbeResult, ProbeStream } from './ffmpeg/run.js';

/** moov boxes larger than this are left to ffprobe (a normal moov is well below: 4 GB files ~10 MB). */
const MAX_MOOV_BYTES = 64 * 1024 * 1024;

interface Box {
  type: string;
  start: number;
  header: number;
  size: number;
}

function* children(b: Buffer, from: number, to: number): Generator<Box> {
  for (let at = from; at + 8 <= to; ) {
    let size = b.readUInt32BE(at);
    let header = 8;
    if (size === 1) {
      if (at + 16 > to) return;
      size = Number(b.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) size = to - at;
    if (size < header || at + size > to) return;
    yield { type: b.toString('latin1', at + 4, at + 8), start: at, header, size };
    at += size;
  }
}

function child(
  b: Buffer,
  parent: Box | { start: number; header: number; size: number },
  type: string,
): Box | null {
  for (const c of children(b, parent.start + parent.header, parent.start + parent.size))
    if (c.type === type) return c;
  return null;
}

/** The streams and duration the moov describes, or null when something in it is not as expected. */
function readMoov(moov: Buffer): { duration: number; streams: ProbeStream[] } | null {
  const root = { start: 0, header: 8, size: moov.length };
  const mvhd = child(moov, root, 'mvhd');
  if (!mvhd) return null;
  const v1 = moov[mvhd.start + mvhd.header] === 1;
  const p = mvhd.start + mvhd.header;
  const timescale = moov.readUInt32BE(p + (v1 ? 20 : 12));
  const length = v1 ? Number(moov.readBigUInt64BE(p + 24)) : moov.readUInt32BE(p + 16);
  if (timescale === 0) return null;
  const streams: ProbeStream[] = [];
  for (const trak of children(moov, 8, moov.length)) {
    if (trak.type !== 'trak') continue;
    const mdia = child(moov, trak, 'mdia');
    const hdlr = mdia && child(moov, mdia, 'hdlr');
    const tkhd = child(moov, trak, 'tkhd');
    if (!hdlr || !tkhd) return null;
    const handler = moov.toString('latin1', hdlr.start + hdlr.header + 8, hdlr.start + hdlr.header + 12);
    const type =
      handler === 'vide'
        ? 'video'
        : handler === 'soun'
          ? 'audio'
          : handler === 'text' || handler === 'sbtl'
            ? 'subtitle'
            : 'data';
    const stream: ProbeStream = { index: streams.length, codec_type: type };
    if (type === 'video') {
      // tkhd ends with width and height, 16.16 fixed point.
      const end = tkhd.start + tkhd.size;
      stream.width = moov.readUInt32BE(end - 8) >>> 16;
      stream.height = moov.readUInt32BE(end - 4) >>> 16;
    }
    streams.push(stream);
  }
  return { duration: length / timescale, streams };
}

/**
 * ffprobe's answer for a well-formed MP4, read directly; null when the file is anything else (another
 * container, a fragmented MP4, a damaged or truncated one), which the caller then gives to ffprobe.
 */
export async function probeIsoBmff(file: string): Promise<ProbeResult | null> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(16);
    let moov: Buffer | null = null;
    let mdat = false;
    let ftyp = false;
    for (let at = 0; at < size; ) {
      const { bytesRead } = await fh.read(head, 0, 16, at);
      if (bytesRead < 8) return null;
      let boxSize = head.readUInt32BE(0);
      const type = head.toString('latin1', 4, 8);
      if (boxSize === 1) {
        if (bytesRead < 16) return null;
        boxSize = Number(head.readBigUInt64BE(8));
      } else if (boxSize === 0) boxSize = size - at;
      if (boxSize < 8 || at + boxSize > size) return null;
      if (at === 0 && type !== 'ftyp') return null;
      if (type === 'ftyp') ftyp = true;
      else if (type === 'mdat') mdat = true;
      else if (type === 'moof')
        return null; // fragmented: ffprobe knows those better
      else if (type === 'moov') {
        if (moov || boxSize > MAX_MOOV_BYTES) return null;
        moov = Buffer.alloc(boxSize);
        await fh.read(moov, 0, boxSize, at);
      }
      at += boxSize;
    }
    if (!ftyp || !mdat || !moov) return null;
    const facts = readMoov(moov);
    if (!facts?.streams.some((s) => s.codec_type === 'video' || s.codec_type === 'audio')) return null;
    return {
      format: {
        format_name: 'mov,mp4,m4a,3gp,3g2,mj2',
        duration: String(facts.duration),
        size: String(size),
      },
      streams: facts.streams,
    };
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}
