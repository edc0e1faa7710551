/**
 * Tags written into an existing MP4's moov (an MP4 job's file, kept as downloaded): the moov with its
 * `udta/meta/ilst` items ©nam and ©cmt set, every other box and item left as it was, and the chunk
 * offsets moved when the moov's growth must shift the media behind it. Pure: buffers in, buffers out;
 * where the new moov goes is pipeline/mp4/file-tags.ts's choice.
 */

import { COMMENT_ITEM, type FileTags, ilstItems, metaBox, TITLE_ITEM } from './file-tags.js';
import { boxHeader } from './mp4-box-reader.js';
import { box } from './mp4-box-writer.js';

export interface BoxSpan {
  type: string;
  /** Offset of the box's first header byte. */
  start: number;
  /** Offset of its payload. */
  body: number;
  end: number;
}

/** The boxes in b[from, to); null when a size does not fit (a damaged or foreign moov). */
export function boxesIn(b: Buffer, from: number, to: number): BoxSpan[] | null {
  const out: BoxSpan[] = [];
  let at = from;
  for (let h = boxHeader(b, at, to); h; h = boxHeader(b, at, to)) {
    if (h.size < h.header || at + h.size > to) return null;
    out.push({ type: h.type, start: at, body: at + h.header, end: at + h.size });
    at += h.size;
  }
  return at === to ? out : null;
}

const slice = (b: Buffer, s: BoxSpan) => b.subarray(s.start, s.end);

/** The ilst with the tags' items replacing any earlier ©nam/©cmt, the other items kept in place. */
function withItems(b: Buffer, ilst: BoxSpan | undefined, tags: FileTags): Buffer | null {
  const items = ilstItems(tags);
  if (!ilst) return box('ilst', ...items);
  const kids = boxesIn(b, ilst.body, ilst.end);
  if (!kids) return null;
  const kept = kids.filter((k) => k.type !== TITLE_ITEM && k.type !== COMMENT_ITEM).map((k) => slice(b, k));
  return box('ilst', ...kept, ...items);
}

/**
 * The `meta` with the tags. An ISO meta is a full box (4 bytes of version and flags); QuickTime's is
 * not, and starts with a child at once: told apart by whether `hdlr` sits right after the header.
 * A meta whose handler is not 'mdir' holds something else (ID3, XMP): null, left alone.
 */
function withMeta(b: Buffer, meta: BoxSpan, tags: FileTags): Buffer | null {
  const quicktime = b.toString('latin1', meta.body + 4, meta.body + 8) === 'hdlr';
  const first = quicktime ? meta.body : meta.body + 4;
  const kids = boxesIn(b, first, meta.end);
  const hdlr = kids?.find((k) => k.type === 'hdlr');
  if (!kids || !hdlr || b.toString('latin1', hdlr.body + 8, hdlr.body + 12) !== 'mdir') return null;
  const ilst = withItems(
    b,
    kids.find((k) => k.type === 'ilst'),
    tags,
  );
  if (!ilst) return null;
  const others = kids.filter((k) => k.type !== 'ilst').map((k) => slice(b, k));
  // Sizes are rewritten 32-bit: boxes inside a moov stay far below 4 GB.
  return box('meta', b.subarray(meta.body, first), ...others, ilst);
}

/** The moov (the whole box, `moov` at 0) with the tags set; null when its udta cannot take them. */
export function moovWithTags(moov: Buffer, tags: FileTags): Buffer | null {
  if (ilstItems(tags).length === 0) return moov;
  const top = boxesIn(moov, 0, moov.length);
  const m = top?.length === 1 && top[0]!.type === 'moov' ? top[0]! : null;
  const kids = m && boxesIn(moov, m.body, m.end);
  if (!kids) return null;
  const udta = kids.find((k) => k.type === 'udta');
  let newUdta: Buffer | null;
  if (!udta) {
    newUdta = box('udta', metaBox(ilstItems(tags)));
  } else {
    const inner = boxesIn(moov, udta.body, udta.end);
    if (!inner) return null;
    let done = false;
    const parts: Buffer[] = [];
    for (const k of inner) {
      if (k.type === 'meta' && !done) {
        const edited = withMeta(moov, k, tags);
        if (edited) {
          parts.push(edited);
          done = true;
          continue;
        }
      }
      parts.push(slice(moov, k));
    }
    // No iTunes-style meta among them: one more, as ffmpeg would add.
    if (!done) parts.push(metaBox(ilstItems(tags)));
    newUdta = box('udta', ...parts);
  }
  // The udta stays where it was; a new one goes last, where ffmpeg writes it.
  const parts = kids.map((k) => (k === udta ? newUdta : slice(moov, k)));
  return box('moov', ...parts, ...(udta ? [] : [newUdta]));
}

const STBL_PATH = ['trak', 'mdia', 'minf', 'stbl'];

/**
 * The moov with every chunk offset (stco, co64) moved by `delta` bytes, edited in a copy: for when
 * the media moves because the moov in front of it grew. Null when an stco offset would pass 4 GB.
 */
export function shiftChunkOffsets(moov: Buffer, delta: number): Buffer | null {
  const out = Buffer.from(moov);
  const walk = (from: number, to: number, depth: number): boolean => {
    const kids = boxesIn(out, from, to);
    if (!kids) return false;
    for (const k of kids) {
      if (depth < STBL_PATH.length && k.type === STBL_PATH[depth]) {
        if (!walk(k.body, k.end, depth + 1)) return false;
      } else if (depth === STBL_PATH.length && (k.type === 'stco' || k.type === 'co64')) {
        const wide = k.type === 'co64';
        const n = out.readUInt32BE(k.body + 4);
        // A count past the box's end would move bytes of the boxes after it.
        if (k.body + 8 + n * (wide ? 8 : 4) > k.end) return false;
        for (let i = 0; i < n; i++) {
          const at = k.body + 8 + i * (wide ? 8 : 4);
          const v = (wide ? Number(out.readBigUInt64BE(at)) : out.readUInt32BE(at)) + delta;
          if (wide) out.writeBigUInt64BE(BigInt(v), at);
          else if (v > 0xffffffff || v < 0) return false;
          else out.writeUInt32BE(v, at);
        }
      }
    }
    return true;
  };
  const top = boxesIn(out, 0, out.length);
  if (top?.length !== 1 || top[0]!.type !== 'moov') return null;
  return walk(top[0]!.body, top[0]!.end, 0) ? out : null;
}
