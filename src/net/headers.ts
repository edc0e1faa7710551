import { Type } from 'typebox';

/**
 * Request headers a job sends with every fetch (a Referer or Cookie a CDN insists on). Names are RFC
 * 9110 tokens and values have no control characters, so no header can be injected; the headers Gabe
 * sets itself (Host, Range, message framing, connection management) are refused.
 */
const OWN = [
  'host',
  'range',
  'content-length',
  'transfer-encoding',
  'connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'keep-alive',
  'proxy-connection',
];
/** JSON Schema patterns take no flags: each letter of the refused names matches either case. */
const anyCase = (name: string) =>
  [...name].map((c) => (/[a-z]/.test(c) ? `[${c}${c.toUpperCase()}]` : c)).join('');
const NAME = `^(?!(?:${OWN.map(anyCase).join('|')})$)[!#$%&'*+.^_\`|~0-9A-Za-z-]+$`;
const VALUE = '^[^\\u0000-\\u0008\\u000A-\\u001F\\u007F]*$';

export function requestHeaders(description: string, options: { default?: Record<string, string> } = {}) {
  return Type.Record(
    Type.String({ pattern: NAME, maxLength: 256 }),
    Type.String({ maxLength: 8192, pattern: VALUE }),
    {
      ...options,
      maxProperties: 50,
      // patternProperties alone lets every other name through.
      additionalProperties: false,
      description: `${description} Host, Range, Connection and framing headers are Gabe's own.`,
      examples: [{ Referer: 'https://example.com/', 'User-Agent': 'Mozilla/5.0' }],
    },
  );
}

/** Config defaults, then the job's own: header names compare case-insensitively (RFC 9110 5.1). */
export function mergeHeaders(
  ...layers: (Record<string, string> | null | undefined)[]
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const layer of layers) for (const [k, v] of Object.entries(layer ?? {})) out[k.toLowerCase()] = v;
  return out;
}
