/**
 * The Segment Index box (ISO/IEC 14496-12 8.16.3), pure: where each subsegment of a DASH
 * SegmentBase Representation lies in its file, and how long it plays. A Representation that names
 * no @indexRange has its sidx among the file's first top-level boxes; findSidx walks them.
 */
import { GabeError } from '../service/errors.js';
import { boxHeader } from './mp4-box-reader.js';

export interface SidxReference {
  /** Absolute byte offset in the file: the sidx's end + first_offset + the sizes before it. */
  offset: number;
  length: number;
  /** Seconds. */
  duration: number;
  /** 0: media (a moof + mdat run); 1: another sidx (a hierarchical index). */
  referenceType: 0 | 1;
  startsWithSap: boolean;
}

export interface Sidx {
  timescale: number;
  earliestPresentationTime: number;
  references: SidxReference[];
}

function broken(reason: string): GabeError {
  return new GabeError('NOT_A_PLAYLIST', `the DASH segment index (sidx) is unreadable: ${reason}`);
}

/**
 * Parses the sidx box at the start of `bytes`; `sidxOffset` is where that box starts in the file.
 * Throws a GabeError when the box is not a sidx or is cut short.
 */
export function parseSidx(bytes: Buffer, sidxOffset: number): Sidx {
  const box = boxHeader(bytes, 0);
  if (!box) throw broken('cut short');
  if (box.type !== 'sidx') throw broken(`found a '${box.type.replace(/[^\x20-\x7e]/g, '?')}' box instead`);
  // A size of 0 means "to the end of the file": the buffer is the best estimate of that.
  const { size } = box;
  if (size < box.header + 4 || size > bytes.length) throw broken('cut short');
  let at = box.header;
  const version = bytes.readUInt8(at);
  at += 8; // version, flags, reference_ID
  const wide = version === 1;
  const fixed = 4 + (wide ? 16 : 8) + 4;
  if (at + fixed > size) throw broken('cut short');
  const timescale = bytes.readUInt32BE(at);
  at += 4;
  const earliest = wide ? Number(bytes.readBigUInt64BE(at)) : bytes.readUInt32BE(at);
  const firstOffset = wide ? Number(bytes.readBigUInt64BE(at + 8)) : bytes.readUInt32BE(at + 4);
  at += wide ? 16 : 8;
  const count = bytes.readUInt16BE(at + 2); // after 16 reserved bits
  at += 4;
  if (timescale === 0) throw broken('its timescale is 0');
  if (at + count * 12 > size) throw broken('cut short');
  const references: SidxReference[] = [];
  let offset = sidxOffset + size + firstOffset;
  for (let i = 0; i < count; i++, at += 12) {
    const typeAndSize = bytes.readUInt32BE(at);
    const length = typeAndSize & 0x7fffffff;
    references.push({
      offset,
      length,
      duration: bytes.readUInt32BE(at + 4) / timescale,
      referenceType: (typeAndSize >>> 31) as 0 | 1,
      startsWithSap: (bytes.readUInt8(at + 8) & 0x80) !== 0,
    });
    offset += length;
  }
  return { timescale, earliestPresentationTime: earliest, references };
}

export type SidxSearch =
  /** Found at absolute `offset`; `size` is the whole box (it may reach past the bytes searched). */
  | { kind: 'found'; offset: number; size: number }
  /** The bytes end before the next box header, which starts at absolute `offset`: read from there (at the file's end, there is no sidx). */
  | { kind: 'beyond'; offset: number }
  /** Media (moof/mdat) or a box "to the end of the file" came first: the file has no sidx up front. */
  | { kind: 'none' };

/** Walks the top-level boxes of a file's first bytes (`head`, starting at file offset `headOffset`). */
export function findSidx(head: Buffer, headOffset: number): SidxSearch {
  let at = 0;
  for (;;) {
    const box = boxHeader(head, at);
    if (!box) return { kind: 'beyond', offset: headOffset + at };
    if (box.type === 'sidx') return { kind: 'found', offset: headOffset + at, size: box.size };
    if (box.type === 'moof' || box.type === 'mdat' || box.toEnd) return { kind: 'none' };
    if (box.size < box.header)
      throw broken(`a '${box.type.replace(/[^\x20-\x7e]/g, '?')}' box has size ${box.size}`);
    at += box.size;
  }
}
