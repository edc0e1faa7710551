/**
 * Where the parts of a progressive multipart upload (progressive-upload.ts) lie in the file. Part 1
 * covers the head that the MP4 writer rewrites when it finishes (ftyp, the room for the moov, the mdat
 * header), so it goes up last; parts 2… are fixed-size slices of what follows, which the writer
 * appends once and in order, so each can go up as soon as the file has grown past it.
 */

/** S3's smallest part, except for the last one. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** S3's most parts in one object. */
export const MAX_PARTS = 10_000;

/** Bytes [start, end) of the file, sent as part `part`. */
export interface PartRange {
  part: number;
  start: number;
  end: number;
}

/** Where part 1 ends: at least one part long, and never inside the head the writer rewrites. */
export function headPartEnd(headerBytes: number, partSize: number): number {
  return Math.max(partSize, headerBytes);
}

/** Part `part` (≥ 2) as a full part; only the last part of the finished file may be shorter. */
export function fullPart(part: number, headEnd: number, partSize: number): PartRange {
  const start = headEnd + (part - 2) * partSize;
  return { part, start, end: start + partSize };
}

/**
 * The highest part whose bytes a file of `size` bytes already holds in full (1 when none of parts 2…
 * does yet), capped so the finished file can still fit S3's part limit.
 */
export function lastFullPart(size: number, headEnd: number, partSize: number): number {
  if (size < headEnd + partSize) return 1;
  return Math.min(1 + Math.floor((size - headEnd) / partSize), MAX_PARTS);
}

/**
 * The finished file of `size` bytes cut into parts, in order: part 1 the head, then full parts, the
 * last one whatever is left. Null when that makes fewer than 2 parts (nothing to gain over a plain
 * upload) or more than S3 takes.
 */
export function finalParts(size: number, headEnd: number, partSize: number): PartRange[] | null {
  if (size <= headEnd) return null;
  const count = 1 + Math.ceil((size - headEnd) / partSize);
  if (count > MAX_PARTS) return null;
  const parts: PartRange[] = [{ part: 1, start: 0, end: headEnd }];
  for (let n = 2; n <= count; n++) {
    const full = fullPart(n, headEnd, partSize);
    parts.push({ ...full, end: Math.min(full.end, size) });
  }
  return parts;
}
