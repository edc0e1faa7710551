/**
 * ISO BMFF box writing primitives (ISO/IEC 14496-12 4.2): plain and full boxes, containers kept as
 * parts, big-endian fields, and the top-level boxes of the file Gabe writes around its media (ftyp,
 * free, a 64-bit mdat header). Pure: no I/O.
 */

export function box(type: string, ...payload: Buffer[]): Buffer {
  let size = 8;
  for (const p of payload) size += p.length;
  const head = Buffer.alloc(8);
  head.writeUInt32BE(size);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, ...payload], size);
}

/** A container box kept as its parts: nesting copies nothing; the moov is joined once at the end. */
export interface Container {
  length: number;
  parts: Buffer[];
}

export function container(type: string, ...children: (Buffer | Container)[]): Container {
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

export function fullBox(type: string, version: number, flags: number, ...payload: Buffer[]): Buffer {
  const vf = Buffer.alloc(4);
  vf.writeUInt32BE(((version & 0xff) << 24) | (flags & 0xffffff));
  return box(type, vf, ...payload);
}

export function u32be(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => {
    b.writeUInt32BE(v >>> 0, i * 4);
  });
  return b;
}

export function u64be(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(Math.round(v)));
  return b;
}

/** A 32-bit field, or the 64-bit one (version 1) a value past 2^32 needs. */
export function versioned(values: number[]): { version: number; body: Buffer } {
  return values.some((v) => v > 0xffffffff)
    ? { version: 1, body: Buffer.concat(values.map(u64be)) }
    : { version: 0, body: u32be(...values) };
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
