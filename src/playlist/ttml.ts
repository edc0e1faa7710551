/**
 * TTML subtitles (W3C TTML2 / IMSC1 / EBU-TT-D, as DASH serves them in `application/ttml+xml` files),
 * pure: each `<p>` with its time interval and text, as WebVTT cues. Styling and layout are left out:
 * an MP4's mov_text and a sidecar .vtt carry text and timing, which is what players need to show them.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { Cue } from './webvtt-parser.js';

/** An element as fast-xml-parser gives it with preserveOrder: its name → children, attributes at ':@'. */
type Node = Record<string, unknown>;

const xml = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: true,
  // Character references stay as written: WebVTT text takes the same ones (both are HTML's), and a
  // DOCTYPE's own entities are never expanded (no expansion bomb).
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
});

/**
 * Whether a document's root element is TTML's `<tt>`, after any prologue (XML declaration, comments,
 * white space). A scan, not a regular expression: `(?:<!--[\s\S]*?-->\s*)*` took minutes on a
 * hostile segment of a few thousand empty comments.
 */
export function isTtml(text: string): boolean {
  let at = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const blank = () => {
    while (at < text.length && /\s/.test(text[at]!)) at++;
  };
  blank();
  if (text.startsWith('<?xml', at)) {
    const end = text.indexOf('?>', at);
    if (end < 0) return false;
    at = end + 2;
    blank();
  }
  while (text.startsWith('<!--', at)) {
    const end = text.indexOf('-->', at + 4);
    if (end < 0) return false;
    at = end + 3;
    blank();
  }
  return /^<(?:\w+:)?tt[\s>]/.test(text.slice(at, at + 64));
}

/** The timing parameters of the document (TTML2 7.2): frame and tick rates. */
interface Rates {
  frameRate: number;
  subFrameRate: number;
  tickRate: number;
}

/**
 * A TTML time expression (TTML2 10.3.1) in seconds: clock time `hh:mm:ss(.fff)` or `hh:mm:ss:ff(.s)`,
 * or an offset `<number>(h|m|s|ms|f|t)`. null when it is not one.
 */
export function parseTtmlTime(value: string, rates: Rates): number | null {
  const v = value.trim();
  const clock = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)(?::(\d+)(?:\.(\d+))?)?$/.exec(v);
  if (clock) {
    const [, h, m, s, frames, sub] = clock;
    let t = Number(h) * 3600 + Number(m) * 60 + Number(s);
    if (frames !== undefined) t += (Number(frames) + Number(sub ?? 0) / rates.subFrameRate) / rates.frameRate;
    return t;
  }
  const offset = /^(\d+(?:\.\d+)?)(h|ms|m|s|f|t)$/.exec(v);
  if (!offset) return null;
  const n = Number(offset[1]);
  const per: Record<string, number> = {
    h: 3600,
    m: 60,
    s: 1,
    ms: 0.001,
    f: 1 / rates.frameRate,
    t: 1 / rates.tickRate,
  };
  return n * per[offset[2]!]!;
}

const nameOf = (n: Node): string => Object.keys(n).find((k) => k !== ':@') ?? '';
const attrsOf = (n: Node): Record<string, string> => (n[':@'] as Record<string, string> | undefined) ?? {};
const kids = (n: Node): Node[] => {
  const v = n[nameOf(n)];
  return Array.isArray(v) ? (v as Node[]) : [];
};

/** The text of a `<p>` (or span): text nodes with whitespace collapsed, `<br/>` as a line break. */
function textOf(nodes: readonly Node[]): string {
  let out = '';
  for (const n of nodes) {
    const name = nameOf(n);
    if (name === '#text') out += String(n['#text']).replace(/\s+/g, ' ');
    else if (name === 'br') out += '\n';
    else if (name !== 'metadata') out += textOf(kids(n));
  }
  return out;
}

interface Interval {
  begin: number;
  /** Infinity: until its parent ends (or forever at the top). */
  end: number;
}

/** The element's interval inside its parent's (TTML2 12.4: par containers, times from the parent's begin). */
function intervalOf(n: Node, parent: Interval, rates: Rates): Interval {
  const a = attrsOf(n);
  const at = (x: string | undefined) => (x === undefined ? null : parseTtmlTime(x, rates));
  const begin = parent.begin + (at(a.begin) ?? 0);
  const end = at(a.end);
  const dur = at(a.dur);
  let stop = parent.end;
  if (end !== null) stop = Math.min(stop, parent.begin + end);
  if (dur !== null) stop = Math.min(stop, begin + dur);
  return { begin, end: stop };
}

/**
 * The cues of a TTML document: every `<p>` in `<body>` with a finite interval and some text, in
 * document order; null when the text is not TTML (or not XML).
 */
export function parseTtml(text: string): Cue[] | null {
  if (!isTtml(text)) return null;
  let doc: Node[];
  try {
    // The parser takes unbalanced tags as they come; a document that is not well-formed is refused.
    if (XMLValidator.validate(text) !== true) return null;
    doc = xml.parse(text) as Node[];
  } catch {
    return null;
  }
  const tt = doc.find((n) => nameOf(n) === 'tt');
  if (!tt) return null;
  const a = attrsOf(tt);
  const positive = (v: string | undefined, d: number) => (Number(v) > 0 ? Number(v) : d);
  const frameRate =
    positive(a.frameRate, 30) * (a.frameRateMultiplier ? multiplier(a.frameRateMultiplier) : 1);
  const subFrameRate = positive(a.subFrameRate, 1);
  const rates = { frameRate, subFrameRate, tickRate: positive(a.tickRate, frameRate * subFrameRate) };
  const cues: Cue[] = [];
  const walk = (nodes: readonly Node[], parent: Interval) => {
    for (const n of nodes) {
      const name = nameOf(n);
      if (name === '#text' || name === 'metadata' || name === 'head') continue;
      const span = intervalOf(n, parent, rates);
      if (name === 'p') {
        const body = textOf(kids(n))
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '')
          .join('\n');
        if (body && Number.isFinite(span.end) && span.end > span.begin) {
          cues.push({
            id: attrsOf(n).id ?? null,
            start: span.begin,
            end: span.end,
            settings: '',
            text: body,
          });
        }
      } else walk(kids(n), span);
    }
  };
  walk(kids(tt), { begin: 0, end: Number.POSITIVE_INFINITY });
  return cues;
}

/** ttp:frameRateMultiplier="1000 1001" → 1000/1001. */
function multiplier(v: string): number {
  const [num, den] = v.trim().split(/\s+/).map(Number);
  return num && den ? num / den : 1;
}
