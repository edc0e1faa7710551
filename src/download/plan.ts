import { GabeError } from '../errors.js';
import { effectiveIv, identityKey, parseIv } from '../hls/keys.js';
import type { ByteRange, InitSection, Key, MediaPlaylist, Segment } from '../hls/model.js';

/** How to decrypt one piece of media: AES-128-CBC with this key URI and IV, or nothing. */
export interface Decryption {
  keyUri: string;
  iv: Buffer;
}

/** One piece to write to the track file, in order: an init section or a media segment. */
export interface Piece {
  kind: 'init' | 'segment';
  /** Position in the track's write order. */
  index: number;
  /** Media sequence number (segments) or -1 (init sections). */
  msn: number;
  url: string;
  range: ByteRange | null;
  decrypt: Decryption | null;
  duration: number;
}

/**
 * One HTTP request: a single piece, or several consecutive byte ranges of the same resource fetched in
 * one ranged GET and split afterwards (single-file HLS has thousands of these; one request per segment
 * costs a round trip each).
 */
export interface Fetch {
  url: string;
  range: ByteRange | null;
  pieces: Piece[];
}

export interface TrackPlan {
  pieces: Piece[];
  fetches: Fetch[];
  /** Segments that will be fetched (GAP segments excluded). */
  segmentCount: number;
  /** Sum of their EXTINF durations, seconds. */
  duration: number;
  /** Bytes known in advance from byte ranges, or null when any piece's size is unknown. */
  knownBytes: number | null;
  fmp4: boolean;
}

const MAX_COALESCED_BYTES = 8 * 1024 * 1024;
const MAX_COALESCED_PIECES = 32;

function urlOf(item: { uri: string; resolvedUri?: string }, base: string | undefined): string {
  if (item.resolvedUri) return item.resolvedUri;
  try {
    return new URL(item.uri, base).href;
  } catch {
    throw new GabeError('NOT_A_PLAYLIST', `segment URI "${item.uri.slice(0, 200)}" cannot be resolved`);
  }
}

function decryptionFor(keys: readonly Key[], base: string | undefined, iv: () => Buffer): Decryption | null {
  const key = identityKey(keys);
  if (!key) return null;
  if (key.method !== 'AES-128') {
    throw new GabeError('DRM', `encryption method ${key.method} is not supported (only clear-key AES-128)`);
  }
  if (!key.uri) throw new GabeError('KEY', 'an AES-128 key has no URI');
  return { keyUri: urlOf({ uri: key.uri, resolvedUri: key.resolvedUri }, base), iv: iv() };
}

function sameInit(a: InitSection | null, b: InitSection | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return (
    a.uri === b.uri &&
    a.byterange?.offset === b.byterange?.offset &&
    a.byterange?.length === b.byterange?.length
  );
}

function initPiece(map: InitSection, index: number, base: string | undefined): Piece {
  return {
    kind: 'init',
    index,
    msn: -1,
    url: urlOf(map, base),
    range: map.byterange,
    // An encrypted EXT-X-MAP must carry its own IV (RFC 8216 4.3.2.5); without one, IV 0 is what
    // players use in practice.
    decrypt: decryptionFor(map.keys, base, () => {
      const k = identityKey(map.keys);
      return k?.iv ? parseIv(k.iv) : Buffer.alloc(16);
    }),
    duration: 0,
  };
}

function segmentPiece(s: Segment, index: number, base: string | undefined): Piece {
  return {
    kind: 'segment',
    index,
    msn: s.msn,
    url: urlOf(s, base),
    range: s.byterange,
    decrypt: decryptionFor(s.keys, base, () => effectiveIv(s)),
    duration: s.duration ?? 0,
  };
}

function coalesce(pieces: Piece[]): Fetch[] {
  const fetches: Fetch[] = [];
  let current: Fetch | null = null;
  for (const p of pieces) {
    const prev = current?.pieces.at(-1);
    const contiguous =
      current !== null &&
      prev !== undefined &&
      p.range !== null &&
      current.range !== null &&
      p.url === current.url &&
      p.range.offset === current.range.offset + current.range.length &&
      current.range.length + p.range.length <= MAX_COALESCED_BYTES &&
      current.pieces.length < MAX_COALESCED_PIECES;
    if (contiguous && current?.range) {
      current.pieces.push(p);
      current.range = { offset: current.range.offset, length: current.range.length + p.range!.length };
    } else {
      current = { url: p.url, range: p.range, pieces: [p] };
      fetches.push(current);
    }
  }
  return fetches;
}

/**
 * Turns a media playlist into the ordered pieces of one track file: the init section before the first
 * segment that uses it and again whenever it changes, then the segments. GAP segments are skipped:
 * the origin says they do not exist.
 */
export function planTrack(media: MediaPlaylist): TrackPlan {
  const base = media.baseUrl;
  const pieces: Piece[] = [];
  let lastMap: InitSection | null = null;
  let segmentCount = 0;
  let duration = 0;
  let knownBytes: number | null = 0;
  let fmp4 = false;
  for (const s of media.segments) {
    if (s.gap) continue;
    if (s.map && !sameInit(s.map, lastMap)) {
      pieces.push(initPiece(s.map, pieces.length, base));
      fmp4 = true;
      if (knownBytes !== null) knownBytes = s.map.byterange ? knownBytes + s.map.byterange.length : null;
    }
    lastMap = s.map;
    pieces.push(segmentPiece(s, pieces.length, base));
    segmentCount++;
    duration += s.duration ?? 0;
    if (knownBytes !== null) knownBytes = s.byterange ? knownBytes + s.byterange.length : null;
  }
  if (segmentCount === 0) throw new GabeError('NOT_A_PLAYLIST', 'the media playlist lists no segments');
  return { pieces, fetches: coalesce(pieces), segmentCount, duration, knownBytes, fmp4 };
}
