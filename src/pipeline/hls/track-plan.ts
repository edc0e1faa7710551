import { effectiveIv, identityKey, parseIv } from '../../playlist/keys.js';
import type { ByteRange, InitSection, Key, MediaPlaylist, Segment } from '../../playlist/model.js';
import { GabeError } from '../../service/errors.js';

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
  /**
   * The discontinuity run (RFC 8216 4.3.2.3) this piece belongs to: 0 for the first, one more after
   * every EXT-X-DISCONTINUITY. Pieces of one run share timestamps and codec parameters.
   */
  run: number;
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
  /** Sum of their EXTINF durations, seconds (unreadable ones count as 0). */
  duration: number;
  /** Segments whose EXTINF duration is unreadable (NaN, Infinity): `duration` is then a lower bound. */
  unknownDurations: number;
  /** Bytes known in advance from byte ranges, or null when any piece's size is unknown. */
  knownBytes: number | null;
  fmp4: boolean;
  /** EXTINF seconds of each discontinuity run, by run number (one entry without discontinuities). */
  runDurations: number[];
  /** Media sequence number of the last segment planned (live playlists grow past it). */
  lastMsn: number;
  /** The init section in effect at the end of the plan, so that appended segments know theirs. */
  lastMap: InitSection | null;
  override: KeyOverride | null;
}

const MAX_COALESCED_BYTES = 8 * 1024 * 1024;
const MAX_COALESCED_PIECES = 32;

/** A playlist item's absolute URL; `what` names the item when its URI does not resolve. */
export function urlOf(
  item: { uri: string; resolvedUri?: string },
  base: string | undefined,
  what = 'segment',
): string {
  if (item.resolvedUri) return item.resolvedUri;
  try {
    return new URL(item.uri, base).href;
  } catch {
    throw new GabeError('NOT_A_PLAYLIST', `${what} URI "${item.uri.slice(0, 200)}" cannot be resolved`);
  }
}

/** A key and IV given with the job (hex), replacing what the playlist says. */
export interface KeyOverride {
  /** The key is known: key URIs are not fetched (nor required). */
  key: boolean;
  iv: Buffer | null;
}

/** The URI the key cache is asked for when the job brought its own key. */
export const OVERRIDE_KEY_URI = 'gabe:request-key';

function decryptionFor(
  keys: readonly Key[],
  base: string | undefined,
  iv: () => Buffer,
  override: KeyOverride | null,
): Decryption | null {
  const key = identityKey(keys);
  if (!key) return null;
  if (key.method !== 'AES-128') {
    throw new GabeError('DRM', `encryption method ${key.method} is not supported (only clear-key AES-128)`);
  }
  const theIv = override?.iv ?? iv();
  if (override?.key) return { keyUri: OVERRIDE_KEY_URI, iv: theIv };
  if (!key.uri) throw new GabeError('KEY', 'an AES-128 key has no URI');
  return { keyUri: urlOf({ uri: key.uri, resolvedUri: key.resolvedUri }, base), iv: theIv };
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

function initPiece(
  map: InitSection,
  index: number,
  base: string | undefined,
  override: KeyOverride | null,
  run: number,
): Piece {
  return {
    kind: 'init',
    index,
    msn: -1,
    url: urlOf(map, base),
    range: map.byterange,
    // An encrypted EXT-X-MAP must carry its own IV (RFC 8216 4.3.2.5); without one, IV 0 is what
    // players use in practice.
    decrypt: decryptionFor(
      map.keys,
      base,
      () => {
        const k = identityKey(map.keys);
        return k?.iv ? parseIv(k.iv) : Buffer.alloc(16);
      },
      override,
    ),
    duration: 0,
    run,
  };
}

function segmentPiece(
  s: Segment,
  index: number,
  base: string | undefined,
  override: KeyOverride | null,
  run: number,
): Piece {
  return {
    kind: 'segment',
    index,
    msn: s.msn,
    url: urlOf(s, base),
    range: s.byterange,
    decrypt: decryptionFor(s.keys, base, () => effectiveIv(s), override),
    duration: s.duration ?? 0,
    run,
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
export function planTrack(media: MediaPlaylist, override: KeyOverride | null = null): TrackPlan {
  const plan = emptyPlan(override);
  appendSegments(plan, media, media.segments);
  if (plan.segmentCount === 0) throw new GabeError('NOT_A_PLAYLIST', 'the media playlist lists no segments');
  return plan;
}

/** A plan with nothing in it yet: a live recording's, which grows with every reload. */
export function emptyPlan(override: KeyOverride | null = null): TrackPlan {
  return {
    pieces: [],
    fetches: [],
    segmentCount: 0,
    duration: 0,
    unknownDurations: 0,
    knownBytes: 0,
    fmp4: false,
    runDurations: [],
    lastMsn: -1,
    lastMap: null,
    override,
  };
}

/**
 * Adds `segments` (of `media`, in order, newer than the plan's last) to the plan: what a reload of a
 * live playlist brings. Returns how many segments were added.
 */
export function appendSegments(plan: TrackPlan, media: MediaPlaylist, segments: readonly Segment[]): number {
  const base = media.baseUrl;
  const added: Piece[] = [];
  let run = Math.max(0, plan.runDurations.length - 1);
  for (const s of segments) {
    if (s.gap) continue;
    // A discontinuity before the very first segment starts nothing new: there is nothing before it.
    if (s.discontinuity && plan.segmentCount > 0) run++;
    plan.runDurations[run] ??= 0;
    if (s.map && !sameInit(s.map, plan.lastMap)) {
      added.push(initPiece(s.map, plan.pieces.length + added.length, base, plan.override, run));
      plan.fmp4 = true;
      if (plan.knownBytes !== null)
        plan.knownBytes = s.map.byterange ? plan.knownBytes + s.map.byterange.length : null;
    }
    plan.lastMap = s.map;
    added.push(segmentPiece(s, plan.pieces.length + added.length, base, plan.override, run));
    plan.segmentCount++;
    plan.lastMsn = s.msn;
    if (s.duration === null || !Number.isFinite(s.duration)) plan.unknownDurations++;
    else {
      plan.duration += s.duration;
      plan.runDurations[run]! += s.duration;
    }
    if (plan.knownBytes !== null) plan.knownBytes = s.byterange ? plan.knownBytes + s.byterange.length : null;
  }
  plan.pieces.push(...added);
  plan.fetches.push(...coalesce(added));
  return added.filter((p) => p.kind === 'segment').length;
}
