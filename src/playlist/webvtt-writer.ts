/** WebVTT written out (pure): a timestamp, and a whole document from cues and blocks. */
import type { Cue } from './webvtt-parser.js';

/** `hh:mm:ss.mmm`, rounded to the millisecond; negative times become 0. */
export function formatVttTime(seconds: number): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
}

/** One WebVTT document: the signature, the blocks (STYLE/REGION), then the cues. */
export function formatWebVtt(cues: readonly Cue[], blocks: readonly string[] = []): string {
  const out = ['WEBVTT', ''];
  for (const b of blocks) out.push(b, '');
  for (const c of cues) {
    // A blank line would end the cue early and `-->` would start a new one: neither may be in a payload.
    const payload = c.text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.replaceAll('-->', '--&gt;'));
    if (payload.length === 0) continue;
    if (c.id && !c.id.includes('-->')) out.push(c.id);
    out.push(`${formatVttTime(c.start)} --> ${formatVttTime(c.end)}${c.settings ? ` ${c.settings}` : ''}`);
    out.push(...payload, '');
  }
  return out.join('\n');
}
