/**
 * Tags written into an MP4 job's file as downloaded, without copying its media where the layout
 * allows it. Where the new moov goes:
 * - the moov is the last box (written after the media): rewritten where it is, the file grows or
 *   shrinks by the difference;
 * - a `free` box follows it with room (ffmpeg's -moov_size, or padding a tool left): the moov takes
 *   that room, the rest stays a smaller `free`;
 * - the moov sits before or between media boxes with no room, but no media follows it: the old one
 *   becomes a `free` box and the new one is appended;
 * - otherwise (moov in front of the mdat with no room, the common "fast start" layout): one
 *   sequential copy of the file with the new moov and every chunk offset moved by its growth, so the
 *   moov stays in front. A fragmented file (mvex), whose fragments may hold absolute offsets, is left
 *   untagged in that case.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FileTags } from '../../media/file-tags.js';
import { freeHeader } from '../../media/mp4-box-writer.js';
import { type BoxSpan, boxesIn, moovWithTags, shiftChunkOffsets } from '../../media/mp4-tag-edit.js';
import { ensureSpace } from '../../storage/paths.js';

/** How the tags got in, or why they did not (the job then keeps its file untagged, with a warning). */
export type TagOutcome =
  | { done: 'rewritten' | 'into-free' | 'appended' | 'copied' }
  | { done: 'skipped'; why: string };

/** Largest moov read into memory: the sample tables of a many-hour file are a few tens of MB. */
const MAX_MOOV = 128 * 1024 * 1024;

/** The file's top-level boxes, from their headers alone. */
async function topLevel(fh: FileHandle, size: number): Promise<BoxSpan[] | null> {
  const out: BoxSpan[] = [];
  const head = Buffer.alloc(16);
  let at = 0;
  while (at + 8 <= size) {
    const { bytesRead } = await fh.read(head, 0, 16, at);
    const b = head.subarray(0, bytesRead);
    let boxSize = b.readUInt32BE(0);
    let header = 8;
    if (boxSize === 1 && bytesRead >= 16) {
      boxSize = Number(b.readBigUInt64BE(8));
      header = 16;
    } else if (boxSize === 0) {
      boxSize = size - at;
    }
    if (boxSize < header || at + boxSize > size) return null;
    out.push({ type: b.toString('latin1', 4, 8), start: at, body: at + header, end: at + boxSize });
    at += boxSize;
  }
  return out;
}

export async function writeFileTags(file: string, tags: FileTags, signal?: AbortSignal): Promise<TagOutcome> {
  const fh = await open(file, 'r+');
  let copyFrom: { moov: BoxSpan; shifted: Buffer } | null = null;
  try {
    const { size } = await fh.stat();
    const boxes = await topLevel(fh, size);
    const moovs = boxes?.filter((b) => b.type === 'moov') ?? [];
    if (!boxes || moovs.length !== 1) return { done: 'skipped', why: 'no single moov box at the top level' };
    const moov = moovs[0]!;
    if (moov.end - moov.start > MAX_MOOV) return { done: 'skipped', why: 'the moov is too large' };
    const old = Buffer.alloc(moov.end - moov.start);
    await fh.read(old, 0, old.length, moov.start);
    const tagged = moovWithTags(old, tags);
    if (!tagged) return { done: 'skipped', why: 'the moov could not be read' };
    const i = boxes.indexOf(moov);
    const next = boxes[i + 1];
    if (!next) {
      await fh.write(tagged, 0, tagged.length, moov.start);
      await fh.truncate(moov.start + tagged.length);
      return { done: 'rewritten' };
    }
    const room =
      moov.end - moov.start + (next.type === 'free' || next.type === 'skip' ? next.end - next.start : 0);
    if (tagged.length === room || tagged.length + 8 <= room) {
      const rest = room - tagged.length;
      await fh.write(rest > 0 ? Buffer.concat([tagged, freeHeader(rest)]) : tagged, 0, undefined, moov.start);
      return { done: 'into-free' };
    }
    if (!boxes.slice(i + 1).some((b) => b.type === 'mdat' || b.type === 'moof')) {
      // Only non-media boxes after it: nothing points into the old place, which becomes padding.
      await fh.write(freeHeader(moov.end - moov.start), 0, 8, moov.start);
      await fh.write(tagged, 0, tagged.length, size);
      return { done: 'appended' };
    }
    if (boxesIn(tagged, 8, tagged.length)?.some((b) => b.type === 'mvex'))
      return { done: 'skipped', why: 'a fragmented MP4 without room' };
    const shifted = shiftChunkOffsets(tagged, tagged.length - old.length);
    if (!shifted) return { done: 'skipped', why: 'chunk offsets would pass 4 GB' };
    // The copy needs the file's size again until the original goes: without it, the file stays untagged.
    const hasSpace = await ensureSpace(path.dirname(file), size).then(
      () => true,
      () => false,
    );
    if (!hasSpace) return { done: 'skipped', why: 'not enough free space for the tagged copy' };
    copyFrom = { moov, shifted };
  } finally {
    await fh.close();
  }
  await copyWithMoov(file, copyFrom.moov, copyFrom.shifted, signal);
  return { done: 'copied' };
}

/** The file again with `moov` replaced, in one sequential pass, then renamed over the original. */
async function copyWithMoov(
  file: string,
  moov: BoxSpan,
  replacement: Buffer,
  signal?: AbortSignal,
): Promise<void> {
  const copy = `${file}.tagged`;
  try {
    const out = createWriteStream(copy);
    if (moov.start > 0)
      await pipeline(createReadStream(file, { end: moov.start - 1 }), out, { end: false, signal });
    out.write(replacement);
    await pipeline(createReadStream(file, { start: moov.end, highWaterMark: 1024 * 1024 }), out, { signal });
    await rename(copy, file);
  } catch (err) {
    await rm(copy, { force: true });
    throw err;
  }
}
