/**
 * Reading ISO BMFF boxes (ISO/IEC 14496-12 4.2) out of a buffer: box headers (32-bit, 64-bit and
 * to-the-end sizes), a box's children, full-box version and flags. The writing side is
 * mp4-box-writer.ts. Pure.
 */

export interface Box {
  type: string;
  /** Offset of the box's first byte (its size field) in the buffer. */
  start: number;
  /** Bytes of its header: 8, or 16 with a 64-bit size. */
  header: number;
  size: number;
  /** Its size field was 0: the box runs to the end of the file (here: of the bytes given). */
  toEnd?: boolean;
}

/** The header of the box at `at`, or null when fewer than its header's bytes are there. */
export function boxHeader(b: Buffer, at: number, to = b.length): Box | null {
  if (at + 8 > to) return null;
  let size = b.readUInt32BE(at);
  let header = 8;
  if (size === 1) {
    if (at + 16 > to) return null;
    const wide = b.readBigUInt64BE(at + 8);
    size = wide > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(wide);
    header = 16;
  } else if (size === 0) {
    return { type: b.toString('latin1', at + 4, at + 8), start: at, header, size: to - at, toEnd: true };
  }
  return { type: b.toString('latin1', at + 4, at + 8), start: at, header, size };
}

/** The boxes inside `parent` (or `b` whole); throws on a box that overruns its parent. */
export function* children(b: Buffer, parent?: Box, skip = 0): Generator<Box> {
  const to = parent ? parent.start + parent.size : b.length;
  for (let at = parent ? parent.start + parent.header + skip : 0; at < to; ) {
    const h = boxHeader(b, at, to);
    if (!h || h.size < h.header || at + h.size > to) throw new Error(`a box overruns its parent at ${at}`);
    yield h;
    at += h.size;
  }
}

export function child(b: Buffer, parent: Box, type: string): Box | null {
  for (const c of children(b, parent)) if (c.type === type) return c;
  return null;
}

/** Offset of a box's payload (after its header and, for a full box, version and flags). */
export const payload = (x: Box, full = false) => x.start + x.header + (full ? 4 : 0);
export const version = (b: Buffer, x: Box) => b[x.start + x.header]!;
export const flags = (b: Buffer, x: Box) => b.readUInt32BE(x.start + x.header) & 0xffffff;

/** A 32-bit field, or a 64-bit one when `wide`; past 2^53 is not a media time anyone writes. */
export function readTime(b: Buffer, at: number, wide: boolean): number {
  return wide ? Number(b.readBigUInt64BE(at)) : b.readUInt32BE(at);
}

/** The root box of a buffer holding exactly one box (a moov, a moof) as its own parent. */
export function root(b: Buffer): Box {
  const h = boxHeader(b, 0);
  if (!h || h.size !== b.length) throw new Error('not one whole box');
  return h;
}
