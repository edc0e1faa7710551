/**
 * parsePlaylist: playlist text + the final URL in, typed model out. Pure: no I/O, no clock.
 *
 * Why a hand-written RFC 8216 line parser and not hls-parser (the stack's first choice): run over the
 * 115-playlist conformance corpus, hls-parser 0.16.1 throws on URI lines without EXTINF, turns a
 * trailing EXTINF or the parts of an in-progress LL-HLS segment into extra segments, holds a single
 * key per segment (FairPlay + Widevine + PlayReady apply together: it keeps the last), does not
 * substitute EXT-X-DEFINE variables, drops EXT-X-MEDIA groups no variant references and group ids that
 * are never defined, and turns IVs and PDTs into bytes and Dates instead of the text written.
 * Every one of those needed a workaround that re-parsed the same lines, so the parser below does it
 * once: lines.ts (lexing, leniency, variables), attributes.ts (attribute grammar), media.ts, master.ts.
 */
import { GabeError } from '../service/errors.js';
import { type Line, lex } from './lines.js';
import { buildMaster } from './master.js';
import { buildMedia } from './media.js';
import type { Playlist } from './model.js';

export { assertDownloadable, detectDrm, effectiveIv, identityKey, msnIv, parseIv } from './keys.js';

export interface ParseOptions {
  /** Most segments (or master entries) accepted; default 100 000. */
  readonly maxSegments?: number;
  /** Largest playlist accepted, in UTF-8 bytes; default 16 MiB. */
  readonly maxBytes?: number;
  /** Variables from the master playlist, for a media playlist's `EXT-X-DEFINE:IMPORT`. */
  readonly imports?: Readonly<Record<string, string>>;
}

export const DEFAULT_MAX_SEGMENTS = 100_000;
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/** Tags that only a master playlist carries (RFC 8216 4.3.4). */
const MASTER_TAGS = new Set(['EXT-X-STREAM-INF', 'EXT-X-I-FRAME-STREAM-INF', 'EXT-X-MEDIA']);
/** Master tags that a lenient media playlist may also carry by mistake (see the corpus). */
const SESSION_TAGS = new Set(['EXT-X-SESSION-DATA', 'EXT-X-SESSION-KEY', 'EXT-X-CONTENT-STEERING']);

/**
 * A playlist with variants or renditions is a master; one with only session tags is a master too
 * (RFC 8216 8.8) unless it has segments. Everything else, even with no segment yet, is a media playlist.
 */
function isMaster(lines: readonly Line[]): boolean {
  let session = false;
  for (const line of lines) {
    if (line.kind === 'uri') continue;
    if (MASTER_TAGS.has(line.name)) return true;
    if (SESSION_TAGS.has(line.name)) session = true;
  }
  return session && !lines.some((l) => l.kind === 'uri' || l.name === 'EXTINF');
}

function parseBase(baseUrl: string | undefined): URL | undefined {
  if (baseUrl === undefined) return undefined;
  try {
    return new URL(baseUrl);
  } catch (cause) {
    throw new GabeError('INVALID_URL', `invalid playlist base URL: ${baseUrl}`, { cause });
  }
}

export function parsePlaylist(text: string, baseUrl?: string, opts: ParseOptions = {}): Playlist {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxSegments = opts.maxSegments ?? DEFAULT_MAX_SEGMENTS;
  // A UTF-16 code unit is at most 3 UTF-8 bytes, so only count bytes near the limit.
  if (text.length * 3 > maxBytes && Buffer.byteLength(text, 'utf8') > maxBytes) {
    throw new GabeError('PLAYLIST_TOO_LARGE', `the playlist is larger than ${maxBytes} bytes`);
  }
  const base = parseBase(baseUrl);
  try {
    const { lines, defines } = lex(text, {
      base,
      imports: opts.imports,
      maxExpansion: maxBytes,
      maxUris: maxSegments,
    });
    return isMaster(lines)
      ? buildMaster(lines, { base, maxSegments, defines })
      : buildMedia(lines, { base, maxSegments });
  } catch (err) {
    if (err instanceof GabeError) throw err;
    // A bug or an input we did not foresee: still one of our errors, never a crash of the caller.
    const message = err instanceof Error ? err.message : String(err);
    throw new GabeError('NOT_A_PLAYLIST', `the playlist could not be parsed: ${message}`, { cause: err });
  }
}
