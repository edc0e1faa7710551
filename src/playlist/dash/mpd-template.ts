/**
 * SegmentTemplate identifier substitution (ISO/IEC 23009-1 5.3.9.4.4, pure): `$RepresentationID$`,
 * `$Number$`, `$Bandwidth$`, `$Time$`, each but the first with an optional printf width (`%05d`),
 * and `$$` for a dollar sign. An identifier without a value is left as written.
 */

export interface TemplateValues {
  id: string | null;
  bandwidth: number | null;
  number?: number;
  time?: number;
}

const IDENTIFIER = /\$(RepresentationID|Number|Bandwidth|Time|SubNumber)?(?:%0(\d+)([diuxXo]))?\$/g;

export function expandTemplate(template: string, values: TemplateValues): string {
  return template.replace(IDENTIFIER, (whole, name: string | undefined, width?: string, conv?: string) => {
    if (name === undefined) return width === undefined ? '$' : whole;
    const value = identifierValue(name, values);
    if (value === null) return whole;
    if (typeof value === 'string') return value;
    return format(value, width === undefined ? 1 : Number(width), conv ?? 'd');
  });
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
