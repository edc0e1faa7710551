/** MPEG-DASH manifest parser: text and final URL in, typed model out (pure). */
import type { Mpd } from './mpd-model.js';

export function isMpd(_text: string): boolean {
  throw new Error('not yet');
}

export function parseMpd(_text: string, _url: string): Mpd {
  throw new Error('not yet');
}
