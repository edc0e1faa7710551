/**
 * "Disguised" MPEG-TS segments (pure). Some CDNs and free image hosts serve HLS segments with a fake
 * image in front (a PNG/JPEG/GIF/BMP header, sometimes a whole tiny picture) so the file passes an
 * image check. hls.js plays them because its TSDemuxer.syncOffset looks for the sync byte in the
 * first ~940 bytes; ffmpeg probes the image instead (`png_pipe`, one frame) and the remux fails.
 * N_m3u8DL-RE strips such headers (src/N_m3u8DL-RE/Util/ImageHeaderUtil.cs: a few known PNG/GIF/BMP
 * offsets, else the first i with 0x47 at i, i+188 and i+376); we use the scan alone, which also finds
 * the known offsets, and have no window limit after an image signature (a whole picture can be KBs).
 */

const TS_PACKET = 188;
const SYNC = 0x47;
/** Consecutive sync bytes that make a TS run when an image signature says a disguise is likely. */
const IMAGE_PROBE_PACKETS = 3;
/** Stricter for an unknown prefix, and no short tail: 5 packets is a 2^-40 chance for random bytes. */
const UNKNOWN_PROBE_PACKETS = 5;
/** How far into an unknown prefix to look; fake headers are small, real non-TS data is not scanned. */
const UNKNOWN_MAX_PREFIX = 64 * 1024;

export type DisguiseKind = 'png' | 'jpeg' | 'gif' | 'bmp' | 'unknown';

export interface Disguise {
  readonly kind: DisguiseKind;
  /** Offset of the first real TS packet. */
  readonly offset: number;
}

/** 0x47 every 188 bytes from `at`, for `packets` packets (each one whole). */
function syncRun(data: Uint8Array, at: number, packets: number): boolean {
  if (at + packets * TS_PACKET > data.length) return false;
  for (let k = 0; k < packets; k++) if (data[at + k * TS_PACKET] !== SYNC) return false;
  return true;
}

/**
 * MPEG-TS starts at `at`: 3 packets in sync, or, for a shorter tail, every packet in sync up to exactly
 * the end (a short run must also end on a packet boundary, or stray 0x47s in image data would match).
 */
export function isTransportStreamAt(data: Uint8Array, at = 0, probe = IMAGE_PROBE_PACKETS): boolean {
  const whole = Math.floor((data.length - at) / TS_PACKET);
  if (whole >= probe) return syncRun(data, at, probe);
  return whole >= 1 && (data.length - at) % TS_PACKET === 0 && syncRun(data, at, whole);
}

const startsWith = (data: Uint8Array, bytes: readonly number[], at = 0): boolean =>
  data.length >= at + bytes.length && bytes.every((b, i) => data[at + i] === b);

function imageKind(data: Uint8Array): DisguiseKind | null {
  if (startsWith(data, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(data, [0xff, 0xd8, 0xff])) return 'jpeg';
  // "GIF8": its first byte is the TS sync byte, so a GIF prefix is told apart by its signature only.
  if (startsWith(data, [0x47, 0x49, 0x46, 0x38])) return 'gif';
  // "BM" and the two reserved 16-bit fields (bytes 6-9), which are always zero.
  if (startsWith(data, [0x42, 0x4d]) && startsWith(data, [0, 0, 0, 0], 6)) return 'bmp';
  return null;
}

const FMP4_BOXES = new Set(['ftyp', 'styp', 'moof', 'moov', 'sidx', 'emsg', 'prft', 'mdat', 'free', 'skip']);

/** Media we must never cut: fMP4/CMAF boxes, packed audio with its ID3 timestamp, bare ADTS. */
function isOtherMedia(data: Uint8Array): boolean {
  if (data.length >= 8) {
    const type = String.fromCharCode(data[4]!, data[5]!, data[6]!, data[7]!);
    if (FMP4_BOXES.has(type)) return true;
  }
  if (startsWith(data, [0x49, 0x44, 0x33])) return true; // "ID3" (RFC 8216 3.4 packed audio)
  return data.length >= 2 && data[0] === 0xff && (data[1]! & 0xf6) === 0xf0; // ADTS syncword, layer 0
}

/** First offset from `from` (up to `limit`) where a TS run starts; `strict` refuses short tails. */
function findRun(data: Uint8Array, from: number, limit: number, strict: boolean): number | null {
  const last = Math.min(limit, data.length - TS_PACKET);
  for (let i = data.indexOf(SYNC, from); i >= 0 && i <= last; i = data.indexOf(SYNC, i + 1)) {
    if (strict ? syncRun(data, i, UNKNOWN_PROBE_PACKETS) : isTransportStreamAt(data, i)) return i;
  }
  return null;
}

/** What hides the TS data in `data`, and where the TS starts; null for real TS and everything else. */
export function detectDisguise(data: Uint8Array): Disguise | null {
  if (data.length < TS_PACKET || isTransportStreamAt(data, 0)) return null;
  const kind = imageKind(data);
  if (kind !== null) {
    const offset = findRun(data, 1, data.length, false);
    return offset === null ? null : { kind, offset };
  }
  if (isOtherMedia(data)) return null;
  const offset = findRun(data, 1, UNKNOWN_MAX_PREFIX, true);
  return offset === null ? null : { kind: 'unknown', offset };
}

export const isDisguised = (data: Uint8Array): boolean => detectDisguise(data) !== null;

/**
 * The real MPEG-TS inside a disguised segment, as a view of the same memory (no copy); `data` itself
 * when it is real TS, fMP4, audio, or anything else without a TS run behind a fake header.
 */
export function stripDisguise(data: Buffer): Buffer {
  const found = detectDisguise(data);
  return found === null ? data : data.subarray(found.offset);
}
