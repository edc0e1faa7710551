/**
 * What makes two MP4s the same download, whatever title and source tags they carry: every top-level
 * box in order but padding (`free`, `skip`), the moov without its `udta` (where the tags live) and
 * with its chunk offsets counted from the first mdat rather than the file's start (a moov that grew
 * in front of the media moves it). Two downloads of one file under different names, or a download
 * and its source, have the same identity; one wrong byte of media or sample table does not.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { box } from '../../src/media/mp4-box-writer.js';
import { boxesIn, shiftChunkOffsets } from '../../src/media/mp4-tag-edit.js';

export function mediaIdentity(file: string | Buffer): string {
  const b = typeof file === 'string' ? readFileSync(file) : file;
  const top = boxesIn(b, 0, b.length);
  if (!top) throw new Error('not a well-formed MP4');
  const mdat = top.find((t) => t.type === 'mdat');
  const hash = createHash('sha256');
  for (const t of top) {
    if (t.type === 'free' || t.type === 'skip') continue;
    if (t.type !== 'moov') {
      hash.update(t.type);
      hash.update(b.subarray(t.body, t.end));
      continue;
    }
    const kids = boxesIn(b, t.body, t.end) ?? [];
    const moov = box('moov', ...kids.filter((k) => k.type !== 'udta').map((k) => b.subarray(k.start, k.end)));
    const relative = shiftChunkOffsets(moov, -(mdat?.start ?? 0));
    if (!relative) throw new Error('chunk offsets before the mdat');
    hash.update(relative);
  }
  return hash.digest('hex');
}
