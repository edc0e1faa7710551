/**
 * A subtitle segment in whatever form it came, as the WebVTT the stitcher reads (pure): WebVTT as it
 * is, a TTML document's paragraphs (playlist/ttml.ts), or the cues of an fMP4 text track's segment
 * (media/fmp4-text.ts: stpp, wvtt), whose times are on the track's media clock and so go out with an
 * X-TIMESTAMP-MAP tying them to the video's, as an HLS packager's WebVTT would.
 */
import { looksFmp4 } from '../../media/fmp4-reader.js';
import { fmp4TextCues, type TextTrackInit } from '../../media/fmp4-text.js';
import { WRAP } from '../../media/track-timeline.js';
import { parseTtml } from '../../playlist/ttml.js';
import { formatWebVtt } from '../../playlist/webvtt-writer.js';

/** `data` as a WebVTT document; `init` is the text track's init segment, for fMP4 segments. */
export function asWebVtt(data: Buffer, init: TextTrackInit | null): string {
  if (init && looksFmp4(data)) {
    const cues = fmp4TextCues(data, init);
    if (cues.length === 0) return 'WEBVTT\n';
    // Times relative to the first cue, and that cue's media time as the map's 90 kHz MPEGTS.
    const base = Math.min(...cues.map((c) => c.start));
    const mpegts = Math.round(base * 90_000) % WRAP;
    const vtt = formatWebVtt(cues.map((c) => ({ ...c, start: c.start - base, end: c.end - base })));
    return vtt.replace(/^WEBVTT\n/, `WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:${mpegts},LOCAL:00:00:00.000\n`);
  }
  const text = data.toString('utf8');
  const ttml = parseTtml(text);
  return ttml ? formatWebVtt(ttml) : text;
}
