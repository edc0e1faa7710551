/**
 * Deterministic playlist mutation for fuzzing the parser (test/unit/fuzz.test.ts).
 *
 * Every case is a pure function of (seed, index, sources): `makeCase` derives a private PRNG from the
 * seed and the case index, so one failing case can be regenerated and replayed on its own without
 * running the thousands before it.
 *
 * ```ts
 * const c = makeCase(sources, 42, 1234);
 * c.text   // the mutated playlist
 * c.ops    // the mutations applied, in order, e.g. ['repeatLine', 'flipBytes']
 * ```
 */

export type Rng = () => number;

/** mulberry32: tiny, fast and good enough for reproducible test data. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
export const pickOf = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;

export interface Source {
  /** Where the text came from (a corpus path or an inline name), for failure reports. */
  readonly name: string;
  readonly text: string;
  /** The playlist's URL, when the source has one. */
  readonly base?: string;
}

export interface FuzzCase {
  readonly index: number;
  readonly source: string;
  readonly base: string | undefined;
  readonly ops: readonly string[];
  readonly text: string;
}

/** Tags the parser knows, plus a few it must ignore. */
const TAGS = [
  'EXTINF',
  'EXT-X-BYTERANGE',
  'EXT-X-KEY',
  'EXT-X-MAP',
  'EXT-X-STREAM-INF',
  'EXT-X-I-FRAME-STREAM-INF',
  'EXT-X-MEDIA',
  'EXT-X-SESSION-KEY',
  'EXT-X-SESSION-DATA',
  'EXT-X-DEFINE',
  'EXT-X-SKIP',
  'EXT-X-START',
  'EXT-X-TARGETDURATION',
  'EXT-X-MEDIA-SEQUENCE',
  'EXT-X-DISCONTINUITY-SEQUENCE',
  'EXT-X-DISCONTINUITY',
  'EXT-X-ENDLIST',
  'EXT-X-PLAYLIST-TYPE',
  'EXT-X-I-FRAMES-ONLY',
  'EXT-X-GAP',
  'EXT-X-PROGRAM-DATE-TIME',
  'EXT-X-VERSION',
  'EXT-X-INDEPENDENT-SEGMENTS',
  'EXT-X-PART',
  'EXT-X-PRELOAD-HINT',
  'EXT-X-SERVER-CONTROL',
  'EXT-X-CONTENT-STEERING',
  'EXT-X-DATERANGE',
  'EXTM3U',
  'EXT-X-UNKNOWN-TAG',
];

const ATTRIBUTE_NAMES = [
  'METHOD',
  'URI',
  'IV',
  'KEYFORMAT',
  'KEYFORMATVERSIONS',
  'KEYID',
  'BYTERANGE',
  'BANDWIDTH',
  'AVERAGE-BANDWIDTH',
  'RESOLUTION',
  'CODECS',
  'FRAME-RATE',
  'AUDIO',
  'VIDEO',
  'SUBTITLES',
  'CLOSED-CAPTIONS',
  'TYPE',
  'GROUP-ID',
  'NAME',
  'LANGUAGE',
  'DEFAULT',
  'AUTOSELECT',
  'FORCED',
  'CHANNELS',
  'VALUE',
  'IMPORT',
  'QUERYPARAM',
  'SKIPPED-SEGMENTS',
  'TIME-OFFSET',
  '__proto__',
  'constructor',
  '',
];

/** Values that have broken parsers: wrong signs, overflow, non-numbers, odd syntax, huge text. */
export const WEIRD_VALUES = [
  '',
  '0',
  '-0',
  '-1',
  '-5.5',
  '.5',
  '5.',
  '1e308',
  '1e309',
  '-1e309',
  '1e-400',
  'NaN',
  'Infinity',
  '-Infinity',
  '9007199254740993',
  '99999999999999999999999999',
  '0x1F',
  '0x',
  '0xZZ',
  `0x${'f'.repeat(40)}`,
  `0x${'0'.repeat(31)}1`,
  '00001',
  'YES',
  'NO',
  'NONE',
  'AES-128',
  'SAMPLE-AES',
  'AES-256',
  'AUDIO',
  'CLOSED-CAPTIONS',
  '1280x720',
  '0x0',
  '999999x999999',
  '1280x',
  'x720',
  '-1x-1',
  '1@2',
  '5@-1',
  '@',
  '9007199254740991@9007199254740991',
  '"',
  '"unterminated',
  '{$x}',
  '{$',
  'a,b=c',
  'http://[::1',
  'skd://key',
  'data:text/plain,x',
  'javascript:alert(1)',
  '\u202Egpj.exe',
  '😀',
  '__proto__',
  'toString',
  'x'.repeat(10_000),
  '9'.repeat(10_000),
];

const WEIRD_URIS = [
  '',
  '/',
  '//',
  '?',
  '#',
  '..',
  '../'.repeat(200),
  'http://',
  'http://[::1',
  'http://a:99999/x.ts',
  'https://user:pass@host/x.ts',
  'file:///etc/passwd',
  'javascript:alert(1)',
  'data:video/mp2t;base64,AAAA',
  '\\\\server\\share\\x.ts',
  '%',
  '%zz',
  'seg {$x}.ts',
  'a'.repeat(10_000),
  '\u0000.ts',
  '\u202E.ts',
  'セグメント.ts',
];

const INJECTIONS = [
  '\r',
  '\n',
  '\r\n',
  '\u0000',
  '\uFEFF',
  '\t',
  '\u2028',
  '\uFFFD',
  '"',
  ',',
  '=',
  '{$',
  '#',
  ':',
];

function lines(text: string): string[] {
  return text.split('\n');
}

function randomValue(rng: Rng): string {
  const v = pickOf(rng, WEIRD_VALUES);
  switch (int(rng, 4)) {
    case 0:
      return `"${v}"`;
    case 1:
      return `"${v}`; // unterminated quote
    default:
      return v;
  }
}

function randomTag(rng: Rng): string {
  const name = pickOf(rng, TAGS);
  const n = int(rng, 5);
  if (n === 0) return `#${name}`;
  if (rng() < 0.3) return `#${name}:${pickOf(rng, WEIRD_VALUES)},${rng() < 0.5 ? 'title' : ''}`;
  const attrs: string[] = [];
  for (let i = 0; i < n; i++) attrs.push(`${pickOf(rng, ATTRIBUTE_NAMES)}=${randomValue(rng)}`);
  return `#${name}:${attrs.join(',')}`;
}

type Mutation = (text: string, rng: Rng, donor: string) => string;

/** Each mutation takes the text, a PRNG and another source (for crossover) and returns new text. */
export const MUTATIONS: Readonly<Record<string, Mutation>> = {
  deleteLine(text, rng) {
    const l = lines(text);
    l.splice(int(rng, l.length), 1);
    return l.join('\n');
  },
  duplicateLine(text, rng) {
    const l = lines(text);
    const i = int(rng, l.length);
    l.splice(i, 0, l[i] ?? '');
    return l.join('\n');
  },
  swapLines(text, rng) {
    const l = lines(text);
    const i = int(rng, l.length);
    const j = int(rng, l.length);
    [l[i], l[j]] = [l[j] ?? '', l[i] ?? ''];
    return l.join('\n');
  },
  truncate(text, rng) {
    const bytes = Buffer.from(text, 'utf8');
    return bytes.subarray(0, int(rng, bytes.length + 1)).toString('utf8');
  },
  flipBytes(text, rng) {
    // Byte-level, then decoded as the service does: broken UTF-8 becomes U+FFFD.
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length === 0) return text;
    for (let n = 1 + int(rng, 8); n > 0; n--) {
      const i = int(rng, bytes.length);
      bytes[i] = (bytes[i] ?? 0) ^ (1 << int(rng, 8));
    }
    return bytes.toString('utf8');
  },
  insertTag(text, rng) {
    const l = lines(text);
    l.splice(int(rng, l.length + 1), 0, randomTag(rng));
    return l.join('\n');
  },
  replaceNumber(text, rng) {
    const numbers = [...text.matchAll(/-?\d+(?:\.\d+)?/g)];
    if (numbers.length === 0) return text;
    const m = pickOf(rng, numbers);
    const at = m.index ?? 0;
    return text.slice(0, at) + pickOf(rng, WEIRD_VALUES) + text.slice(at + m[0].length);
  },
  replaceAttribute(text, rng) {
    const eqs = [...text.matchAll(/=("[^"\n]*"|[^,\n]*)/g)];
    if (eqs.length === 0) return text;
    const m = pickOf(rng, eqs);
    const at = (m.index ?? 0) + 1;
    return text.slice(0, at) + randomValue(rng) + text.slice(at + (m[1] ?? '').length);
  },
  replaceUri(text, rng) {
    const l = lines(text);
    const uris = l.flatMap((line, i) => (line.trim() !== '' && !line.startsWith('#') ? [i] : []));
    if (uris.length === 0) return text;
    l[pickOf(rng, uris)] = pickOf(rng, WEIRD_URIS);
    return l.join('\n');
  },
  injectChars(text, rng) {
    const at = int(rng, text.length + 1);
    return text.slice(0, at) + pickOf(rng, INJECTIONS) + text.slice(at);
  },
  repeatLine(text, rng) {
    const l = lines(text);
    const i = int(rng, l.length);
    l.splice(i, 1, ...Array.from({ length: 1000 }, () => l[i] ?? ''));
    return l.join('\n');
  },
  crossover(text, rng, donor) {
    const l = lines(text);
    const d = lines(donor);
    const from = int(rng, d.length);
    const piece = d.slice(from, from + 1 + int(rng, 20));
    l.splice(int(rng, l.length + 1), int(rng, 3), ...piece);
    return l.join('\n');
  },
  defineVariables(text, rng) {
    // Variables that refer to themselves or each other, and references to undefined ones.
    const l = lines(text);
    const defines = [
      '#EXT-X-DEFINE:NAME="x",VALUE="{$x}{$x}"',
      '#EXT-X-DEFINE:NAME="x",VALUE="seg"',
      '#EXT-X-DEFINE:NAME="y",VALUE="{$x}{$x}{$x}{$x}"',
      '#EXT-X-DEFINE:IMPORT="x"',
      '#EXT-X-DEFINE:IMPORT="constructor"',
      '#EXT-X-DEFINE:QUERYPARAM="token"',
      '#EXT-X-DEFINE:NAME="",VALUE=""',
      'http://h/{$y}{$y}{$x}.ts',
    ];
    for (let n = 1 + int(rng, 4); n > 0; n--) l.splice(int(rng, l.length + 1), 0, pickOf(rng, defines));
    return l.join('\n');
  },
  lowercaseTag(text, rng) {
    const l = lines(text);
    const i = int(rng, l.length);
    l[i] = rng() < 0.5 ? (l[i] ?? '').toLowerCase() : ` ${l[i] ?? ''}\t`;
    return l.join('\n');
  },
};

const MUTATION_NAMES = Object.keys(MUTATIONS);

export const BASES = [
  'https://cdn.example.com/vod/path/master.m3u8?token=abc&x=%20',
  'http://127.0.0.1:8080/p.m3u8',
  'https://[::1]:8443/a/b/',
  undefined,
];

/** The `index`-th case of a run: one source with 1 to 4 mutations, reproducible from (seed, index). */
export function makeCase(sources: readonly Source[], seed: number, index: number): FuzzCase {
  const rng = mulberry32((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const src = pickOf(rng, sources);
  const donor = pickOf(rng, sources).text;
  let text = src.text;
  const ops: string[] = [];
  for (let n = 1 + int(rng, 4); n > 0; n--) {
    const op = pickOf(rng, MUTATION_NAMES);
    ops.push(op);
    text = MUTATIONS[op]!(text, rng, donor);
  }
  const base = src.base !== undefined && rng() < 0.75 ? src.base : pickOf(rng, BASES);
  return { index, source: src.name, base, ops, text };
}
