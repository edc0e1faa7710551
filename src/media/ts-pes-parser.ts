/**
 * One PES packet (ISO/IEC 13818-1 2.4.3.6) as the demuxer hands it on: its elementary stream bytes
 * and its timestamps, read from the packet's header. Pure.
 */
import { readPts } from './pts.js';

export interface Pes {
  /**
   * The elementary stream bytes of one PES packet: a view into the demuxer's buffer, valid only
   * during the handler call (the handler copies what it keeps).
   */
  data: Buffer;
  /** 33-bit 90 kHz timestamps as they are in the stream (not unwrapped); dts = pts when absent. */
  pts: number | null;
  dts: number | null;
  /**
   * Packets of it were lost or damaged in transport: its bytes are not the muxer's. An empty corrupt
   * PES says that packets were lost between two PES (a whole PES, or the start of one).
   */
  corrupt: boolean;
}

/** Where the demuxer hands on each PES of the streams it carries. */
export interface DemuxHandlers {
  video?(pes: Pes): void;
  audio?(pes: Pes): void;
}

/** A PES packet's payload and timestamps (2.4.3.6), or null when it is not one. */
export function parsePes(raw: Buffer): Pes | null {
  if (raw.length < 9 || raw[0] !== 0 || raw[1] !== 0 || raw[2] !== 1) return null;
  const flags = raw[7]!;
  const headerEnd = 9 + raw[8]!;
  if (headerEnd > raw.length) return null;
  let pts: number | null = null;
  let dts: number | null = null;
  if (flags & 0x80 && raw.length >= 14) pts = readPts(raw, 9);
  if ((flags & 0xc0) === 0xc0 && raw.length >= 19) dts = readPts(raw, 14);
  return { data: raw.subarray(headerEnd), pts, dts: dts ?? pts, corrupt: false };
}
