/**
 * SegmentTemplate identifier substitution (ISO/IEC 23009-1 5.3.9.4.4, pure): `$RepresentationID$`,
 * `$Number$`, `$Bandwidth$`, `$Time$`, each but the first with an optional printf width (`%05d`),
 * and `$$` for a dollar sign. An identifier without a value is left as written.
 *
 * A Representation can address up to MAX_DASH_SEGMENTS segments, so the template is tokenised once
 * and resolved against the BaseURL once (mediaUrlTemplate); only the digits change per segment.
 */
import { resolveUrl } from './mpd-values.js';

export interface TemplateValues {
  id: string | null;
  bandwidth: number | null;
  number?: number;
  time?: number;
}

type Part = string | { name: string | undefined; width: number; conv: string; whole: string };

const IDENTIFIER = /\$(RepresentationID|Number|Bandwidth|Time|SubNumber)?(?:%0(\d+)([diuxXo]))?\$/g;

function tokenise(template: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const m of template.matchAll(IDENTIFIER)) {
    parts.push(template.slice(last, m.index));
    parts.push({ name: m[1], width: m[2] === undefined ? 1 : Number(m[2]), conv: m[3] ?? 'd', whole: m[0] });
    last = m.index + m[0].length;
  }
  parts.push(template.slice(last));
  return parts;
}

/** `keepEscapes`: leave `$$` as written, for a template that is substituted again later. */
function render(parts: readonly Part[], values: TemplateValues, keepEscapes = false): string {
  let out = '';
  for (const part of parts) {
    if (typeof part === 'string') out += part;
    else if (part.name === undefined) out += part.whole === '$$' && !keepEscapes ? '$' : part.whole;
    else {
      const value = identifierValue(part.name, values);
      if (value === null) out += part.whole;
      else out += typeof value === 'string' ? value : format(value, part.width, part.conv);
    }
  }
  return out;
}

export function expandTemplate(template: string, values: TemplateValues): string {
  return render(tokenise(template), values);
}

/**
 * The absolute URL of each segment of `template`, as `(number, time) => url`. Same result as
 * resolving `expandTemplate(...)` against `base` for every segment; the fast path is taken only when
 * resolving first provably keeps every identifier intact (it falls back otherwise, e.g. when an
 * identifier sits in a host name, which URL parsing lower-cases).
 */
export function mediaUrlTemplate(
  template: string,
  rep: { id: string | null; bandwidth: number | null },
  base: string,
): (number: number, time: number) => string {
  const slow = (number: number, time: number) =>
    resolveUrl(expandTemplate(template, { ...rep, number, time }), base);
  if (rep.id?.includes('$')) return slow;
  const partial = render(tokenise(template), rep, true);
  let resolved: string;
  try {
    resolved = new URL(partial, base).href;
  } catch {
    return slow;
  }
  const tokens = (parts: Part[]) => parts.flatMap((p) => (typeof p === 'string' ? [] : [p.whole]));
  const parts = tokenise(resolved);
  if (tokens(parts).join('|') !== tokens(tokenise(partial)).join('|')) return slow;
  return (number, time) => render(parts, { id: null, bandwidth: null, number, time });
}

function identifierValue(name: string, v: TemplateValues): string | number | null {
  switch (name) {
    case 'RepresentationID':
      return v.id;
    case 'Bandwidth':
      return v.bandwidth;
    case 'Number':
      return v.number ?? null;
    case 'Time':
      return v.time ?? null;
    default:
      return null;
  }
}

function format(value: number, width: number, conv: string): string {
  const n = Math.trunc(value);
  let digits = String(n);
  if (conv === 'x') digits = n.toString(16);
  else if (conv === 'X') digits = n.toString(16).toUpperCase();
  else if (conv === 'o') digits = n.toString(8);
  return digits.padStart(Math.min(width, 64), '0');
}
