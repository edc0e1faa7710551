/** The Segment Index box (ISO/IEC 14496-12 8.16.3): where each DASH subsegment lies in a file (pure). */

export interface SidxReference {
  /** Absolute byte offset in the file. */
  offset: number;
  length: number;
  /** Seconds. */
  duration: number;
  referenceType: 0 | 1;
  startsWithSap: boolean;
}

export interface Sidx {
  timescale: number;
  earliestPresentationTime: number;
  references: SidxReference[];
}

export function parseSidx(_bytes: Buffer, _sidxOffset: number): Sidx {
  throw new Error('not yet');
}

export function findSidx(_head: Buffer, _headOffset: number): { offset: number; size: number } | null {
  throw new Error('not yet');
}
