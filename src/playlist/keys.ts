/**
 * Key facts the downloader needs: the IV to decrypt a segment with, whether a stream is DRM-protected
 * (we only decrypt clear-key AES-128), and the single gate before a media playlist is downloaded.
 */
import { GabeError } from '../service/errors.js';
import type { Key, MediaPlaylist, Playlist, Segment } from './model.js';

/** Parses a hexadecimal IV (`0x...`, prefix optional) into 16 bytes, left-padding short values. */
export function parseIv(hex: string): Buffer {
  const digits = hex.trim().replace(/^0[xX]/, '');
  if (digits.length === 0 || digits.length > 32 || !/^[0-9a-fA-F]+$/.test(digits)) {
    throw new GabeError('KEY', `invalid IV "${hex}": expected up to 32 hexadecimal digits`);
  }
  return Buffer.from(digits.padStart(32, '0'), 'hex');
}

/** The media sequence number as a 128-bit big-endian integer (RFC 8216 5.2). */
export function msnIv(msn: number): Buffer {
  return Buffer.from(BigInt.asUintN(128, BigInt(msn)).toString(16).padStart(32, '0'), 'hex');
}

/**
 * The IV for decrypting `segment` with `key` (by default its identity-format key): the IV attribute
 * when present, else the segment's media sequence number (RFC 8216 5.2). An EXT-X-MAP encrypted with
 * AES-128 must carry an explicit IV (RFC 8216 4.3.2.5), so for init sections use parseIv(key.iv).
 */
export function effectiveIv(segment: Segment, key: Key | undefined = identityKey(segment.keys)): Buffer {
  return key?.iv ? parseIv(key.iv) : msnIv(segment.msn);
}

/** The key a clear-key client uses: KEYFORMAT identity (the default). */
export function identityKey(keys: readonly Key[]): Key | undefined {
  return keys.find((k) => k.keyformat === 'identity');
}

const WIDEVINE = 'urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed';
const PLAYREADY = new Set(['com.microsoft.playready', 'urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95']);
const FAIRPLAY = 'com.apple.streamingkeydelivery';

function drmOf(key: Key): string | null {
  const format = key.keyformat.toLowerCase();
  if (format === WIDEVINE) return 'Widevine';
  if (PLAYREADY.has(format)) return 'PlayReady';
  // hls-parser and others keep `skd://` keys as ordinary keys, but they are FairPlay whatever the format.
  if (format === FAIRPLAY || key.uri?.toLowerCase().startsWith('skd://')) return 'FairPlay';
  // SAMPLE-AES encrypts inside the elementary streams; ffmpeg cannot undo it, so it is DRM to us.
  if (key.method === 'SAMPLE-AES' || key.method === 'SAMPLE-AES-CTR') return key.method;
  return null;
}

/** The keys of a playlist, each key-state array visited once (segments share them). */
function* allKeys(playlist: Playlist): Generator<Key> {
  if (playlist.kind === 'master') {
    yield* playlist.sessionKeys;
    return;
  }
  const seen = new Set<readonly Key[]>();
  for (const s of playlist.segments) {
    for (const list of s.map ? [s.keys, s.map.keys] : [s.keys]) {
      if (seen.has(list)) continue;
      seen.add(list);
      yield* list;
    }
  }
}

/**
 * Names the DRM systems a playlist uses ("FairPlay, Widevine"), or null when it is clear or uses
 * clear-key AES only. For a master playlist only EXT-X-SESSION-KEY can tell; check the media too.
 */
export function detectDrm(playlist: Playlist): string | null {
  const found = new Set<string>();
  for (const key of allKeys(playlist)) {
    const drm = drmOf(key);
    if (drm !== null) found.add(drm);
  }
  return found.size === 0 ? null : [...found].join(', ');
}

/** Throws unless the media playlist is one we can download: not DRM-protected, not empty. */
export function assertDownloadable(media: MediaPlaylist): void {
  const drm = detectDrm(media);
  if (drm !== null) {
    throw new GabeError('DRM', `the stream is DRM-protected (${drm}) and cannot be downloaded`, {
      details: { drm },
    });
  }
  // A live playlist that lists nothing yet is indistinguishable from a stub or an error page.
  if (media.segments.length === 0) {
    throw new GabeError('NOT_A_PLAYLIST', 'the media playlist lists no segments');
  }
}
