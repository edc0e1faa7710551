/**
 * An H.264 access unit as the framer (h264-framer.ts) builds it: the unit handed on (AccessUnit) and
 * the one still being collected (OpenUnit, reused), its bytes back in Annex B form when a PES cuts it,
 * and the bit-level reads the framer decides a unit's end by (first_mb_in_slice, 7.3.3). Pure.
 */

export const START_CODE = Buffer.from([0, 0, 1]);

export interface AccessUnit {
  /** The sample's bytes, in order (length-prefixed NAL units). */
  parts: Buffer[];
  size: number;
  /** A sync sample: an IDR picture, or one a recovery point SEI makes a random access point (D.2.8). */
  key: boolean;
  /** The 33-bit timestamps of the PES it started in; null when that PES had none. */
  pts: number | null;
  dts: number | null;
  /** A packet of it was lost or damaged in transport (continuity counter, transport_error_indicator). */
  corrupt: boolean;
}

export interface OpenUnit extends AccessUnit {
  hasSlice: boolean;
  lastFirstMb: number;
  /** A recovery point SEI came before the first slice. */
  recovery: boolean;
  /** Where the last NAL unit's length field is in the last part (its length may still grow). */
  lastNal: number;
  /** It holds an SPS or PPS. */
  params: boolean;
}

export interface Stamp {
  at: number;
  pts: number | null;
  dts: number | null;
}

/** first_mb_in_slice, the first ue(v) after a slice's NAL header (7.3.3); read as ffmpeg does, raw. */
export function firstMbInSlice(b: Buffer, at: number, end: number): number {
  const limit = Math.min(end, at + 8) * 8;
  let pos = at * 8;
  let zeros = 0;
  while (pos < limit && ((b[pos >> 3]! >> (7 - (pos & 7))) & 1) === 0) {
    zeros++;
    pos++;
  }
  pos++; // the 1 that ends the leading zeros
  if (pos + zeros > limit) return Number.MAX_SAFE_INTEGER;
  let v = 0;
  for (let i = 0; i < zeros; i++, pos++) v = v * 2 + ((b[pos >> 3]! >> (7 - (pos & 7))) & 1);
  return 2 ** zeros - 1 + v;
}

/** Offset of the start code a PES's data begins with (0, or 1 behind a zero byte), else -1. */
export function leadingStartCode(b: Buffer): number {
  if (b.length >= 3 && b[0] === 0 && b[1] === 0 && b[2] === 1) return 0;
  if (b.length >= 4 && b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 1) return 1;
  return -1;
}

export function newUnit(): OpenUnit {
  return {
    parts: [],
    size: 0,
    key: false,
    pts: null,
    dts: null,
    corrupt: false,
    hasSlice: false,
    lastFirstMb: -1,
    recovery: false,
    lastNal: 0,
    params: false,
  };
}

/** An open unit's bytes back in Annex B form (a start code before each NAL unit), to be cut again. */
export function unitBytes(u: OpenUnit): Buffer {
  const pieces: Buffer[] = [];
  for (const p of u.parts) {
    for (let at = 0; at + 4 <= p.length; ) {
      const n = p.readUInt32BE(at);
      pieces.push(START_CODE, p.subarray(at + 4, at + 4 + n));
      at += 4 + n;
    }
  }
  return Buffer.concat(pieces);
}
