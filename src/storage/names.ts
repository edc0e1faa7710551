/**
 * File names from untrusted input. The result is one path component that is safe on Linux, macOS and
 * Windows (users copy downloads to NAS shares and USB sticks), so it cannot climb out of output_path.
 */

const MAX_NAME_BYTES = 200;

// Windows refuses these as a base name whatever the extension ("CON.mp4" opens the console).
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;

// Path separators, Windows-reserved characters, and every C0/C1 control character (incl. DEL).
const FORBIDDEN = /[/\\:*?"<>|\u0000-\u001f\u007f-\u009f]/g;
// Bidi overrides and zero-width characters make "evil\u202Ekpm.exe" display as "evilexe.mp4".
const INVISIBLE = /[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = '';
  let bytes = 0;
  // Iterate by code point so a surrogate pair is never cut in half.
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * Returns a safe base name (no extension is added), or `fallback` when nothing usable is left.
 * Known video extensions at the end are dropped, since the service adds the container's own.
 */
export function sanitizeName(input: string | null | undefined, fallback = 'video'): string {
  let s = (input ?? '').normalize('NFC').replace(INVISIBLE, '').replace(FORBIDDEN, '_');
  s = s.replace(/\.(mp4|m4v|m4a|mov|ts|m3u8|mkv|webm)$/i, '');
  // Collapse runs of dots and underscores so ".." can never survive as a component.
  s = s.replace(/\.{2,}/g, '.').replace(/_{2,}/g, '_');
  // Windows strips trailing dots and spaces; leading dots make hidden files and "." / ".." names; the
  // underscores that replaced separators at either end ("../x" → "_._x") carry nothing.
  s = s.replace(/^[\s._]+|[\s._]+$/g, '');
  s = truncateUtf8(s, MAX_NAME_BYTES).replace(/[\s._]+$/g, '');
  if (WINDOWS_DEVICE.test(s.split('.')[0] ?? '')) s = `_${s}`;
  if (s === '') return fallback;
  return s;
}

/** A default name from the URL's last path segment ("…/movies/big_buck_bunny.mp4?sig=…" → big_buck_bunny). */
export function nameFromUrl(url: string, fallback = 'video'): string {
  try {
    const u = new URL(url);
    const segments = u.pathname.split('/').filter(Boolean);
    let last = segments.at(-1) ?? '';
    try {
      last = decodeURIComponent(last);
    } catch {
      // A malformed percent-escape is kept as written.
    }
    // "index.m3u8", "playlist.m3u8", "master.m3u8" say nothing; the folder above usually names the video.
    if (
      /^(index|playlist|master|prog_index|chunklist[^.]*|manifest|video)\.m3u8$/i.test(last) &&
      segments.length > 1
    ) {
      const parent = segments.at(-2)!;
      try {
        last = decodeURIComponent(parent);
      } catch {
        last = parent;
      }
    }
    return sanitizeName(last.replace(/\.[a-z0-9]{1,5}$/i, ''), fallback);
  } catch {
    return fallback;
  }
}

/** RFC 6266: a plain ASCII fallback plus the exact UTF-8 name for clients that read filename*. */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

/** The media type a finished file is served and uploaded with, from its extension. */
export function contentTypeOf(file: string): string {
  if (/\.m4a$/i.test(file)) return 'audio/mp4';
  if (/\.vtt$/i.test(file)) return 'text/vtt';
  if (/\.mkv$/i.test(file)) return 'video/x-matroska';
  if (/\.mka$/i.test(file)) return 'audio/x-matroska';
  if (/\.jpe?g$/i.test(file)) return 'image/jpeg';
  return 'video/mp4';
}
