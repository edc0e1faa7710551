/**
 * What a segment's bytes must be before they go into the track file: as long as asked, media rather
 * than an error page or a playlist, and without a fake image header in front.
 */
import { detectDisguise } from '../../media/disguise.js';
import { textKind } from '../../media/sniff.js';
import { GabeError } from '../../service/errors.js';
import type { PieceUrls } from './segment-fetch.js';
import type { TrackOptions } from './track-download.js';
import type { Fetch, Piece } from './track-plan.js';

const TEXT_NAMES = { html: 'an HTML page', playlist: 'an HLS playlist' } as const;

export function describe(piece: Piece, label: string): string {
  return piece.kind === 'init'
    ? `the ${label} init section (${piece.url})`
    : `${label} segment ${piece.index} (media sequence ${piece.msn})`;
}

/**
 * A body's length against what was asked: not empty (a 0-byte 200 is an overloaded edge, never an
 * empty segment), a whole resource sent for a byte range (`ofWhole`) long enough to hold the range,
 * as long as its Content-Length (when given here), as long as its byte range. The error, or null.
 */
export function lengthRefusal(
  f: Fetch,
  url: string,
  length: number,
  ofWhole: boolean,
  contentLength: number | null,
): GabeError | null {
  if (length === 0) return new GabeError('TRUNCATED', `${url} answered an empty body (0 bytes)`);
  if (f.range && ofWhole) {
    if (length >= f.range.offset + f.range.length) return null;
    return new GabeError('SEGMENT', `${url} is ${length} bytes, shorter than its byte range`);
  }
  if (contentLength !== null && length !== contentLength) {
    return new GabeError('TRUNCATED', `${url}: got ${length} of ${contentLength} bytes`);
  }
  if (f.range && length !== f.range.length) {
    return new GabeError('TRUNCATED', `${f.url}: got ${length} bytes of a ${f.range.length}-byte range`);
  }
  return null;
}

export function logDisguise(o: TrackOptions, kind: string, bytes: number): void {
  if (o.disguiseLogged) return;
  o.disguiseLogged = true;
  o.log.info({ track: o.label, kind, bytes }, 'segments carry a fake image header; cut off');
}

/**
 * MPEG-TS behind a fake image header (PNG, JPEG, GIF, BMP bytes before the first sync byte, which
 * ffmpeg would take for a picture): the header is cut off. Real TS (0x47 first) costs one comparison.
 */
export function undisguise(chunks: Buffer[], o: TrackOptions): Buffer[] {
  const first = chunks[0];
  if (!first || o.plan.fmp4 || first[0] === 0x47) return chunks;
  // A fake header is small; a first chunk shorter than a few packets is joined with the rest to look.
  const head = first.length >= 16 * 1024 || chunks.length === 1 ? first : Buffer.concat(chunks);
  const found = detectDisguise(head);
  if (!found) return chunks;
  logDisguise(o, found.kind, found.offset);
  let skip = found.offset;
  const out: Buffer[] = [];
  for (const c of chunks) {
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    out.push(skip > 0 ? c.subarray(skip) : c);
    skip = 0;
  }
  return out;
}

export function checkMedia(
  chunks: Buffer[],
  piece: Piece,
  o: TrackOptions,
  urlsOf: (p: Piece) => PieceUrls,
): void {
  const first = chunks[0] ?? Buffer.alloc(0);
  const head = first.length >= 64 || chunks.length === 1 ? first : Buffer.concat(chunks).subarray(0, 64);
  // Not JSON: a byte-range slice may start on any byte, '{' and '[' included; markup and #EXTM3U are
  // unambiguous enough.
  const kind = textKind(head);
  if (kind === 'html' || kind === 'playlist') {
    throw new GabeError(
      'SEGMENT',
      `${describe(piece, o.label)} is ${TEXT_NAMES[kind]}, not media (${urlsOf(piece).url})`,
    );
  }
}
