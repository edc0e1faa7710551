/**
 * What text an origin served where media belongs, told from its first bytes: an error or login page
 * (often with status 200), a JSON error, or a playlist (a loop, a master given as a file, a trick to
 * make ffmpeg read other files). Media never starts like these: MPEG-TS starts with 0x47, MP4 with a
 * box size, AAC with 0xFF, ID3 with "ID3".
 */
export type TextKind = 'html' | 'json' | 'playlist';

export function textKind(head: Buffer): TextKind | null {
  const text = head
    .subarray(0, 512)
    .toString('latin1')
    .replace(/^\xEF\xBB\xBF/, '')
    .trimStart()
    .toLowerCase();
  if (text.startsWith('<!doctype html') || text.startsWith('<html') || text.startsWith('<?xml'))
    return 'html';
  if (text.startsWith('#extm3u')) return 'playlist';
  if (text.startsWith('{') || text.startsWith('[')) return 'json';
  return null;
}
