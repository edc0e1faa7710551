/**
 * Master (multivariant) playlist builder (RFC 8216 4.3.4). Renditions are kept in file order as
 * written, including groups no variant references, and variants keep their group ids as written even
 * when the group is never defined: selection and the `info` output both need the playlist's own view.
 */
import { GabeError } from '../service/errors.js';
import {
  type Attributes,
  attr,
  parseNumber,
  parseResolutionAttr,
  resolveUri,
  trimBlanks,
} from './attributes.js';
import type { Line } from './lines.js';
import { toKey } from './media.js';
import type { Key, MasterPlaylist, Rendition, Variant } from './model.js';

export interface MasterBuildOptions {
  readonly base: URL | undefined;
  readonly maxSegments: number;
  readonly defines: Readonly<Record<string, string>>;
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Optional fields are assigned, not spread in (`...(x ? { x } : {})`): with 100,000 entries, object
 * spread made parsing a hostile master take seconds on the event loop.
 */
function toVariant(attrs: Attributes, uri: string, iFrameOnly: boolean, base: URL | undefined): Variant {
  const variant: Writable<Variant> = {
    uri,
    bandwidth: parseNumber(attrs['BANDWIDTH']),
    averageBandwidth: parseNumber(attrs['AVERAGE-BANDWIDTH']),
    resolution: parseResolutionAttr(attrs['RESOLUTION']),
    codecs: attr(attrs, 'CODECS'),
    frameRate: parseNumber(attrs['FRAME-RATE']),
    audio: attr(attrs, 'AUDIO'),
    video: attr(attrs, 'VIDEO'),
    subtitles: attr(attrs, 'SUBTITLES'),
    closedCaptions: attr(attrs, 'CLOSED-CAPTIONS'),
    iFrameOnly,
    attributes: attrs,
  };
  const resolvedUri = resolveUri(uri, base);
  if (resolvedUri !== undefined) variant.resolvedUri = resolvedUri;
  return variant;
}

function toRendition(attrs: Attributes, base: URL | undefined): Rendition {
  const uri = attr(attrs, 'URI');
  const rendition: Writable<Rendition> = {
    type: attrs['TYPE'] ?? '',
    groupId: attrs['GROUP-ID'] ?? '',
    name: attrs['NAME'] ?? '',
    language: attr(attrs, 'LANGUAGE'),
    assocLanguage: attr(attrs, 'ASSOC-LANGUAGE'),
    uri,
    // Enumerated YES/NO; anything else (absent included) is NO (RFC 8216 4.3.4.1).
    default: attrs['DEFAULT'] === 'YES',
    autoselect: attrs['AUTOSELECT'] === 'YES',
    forced: attrs['FORCED'] === 'YES',
    characteristics: attr(attrs, 'CHARACTERISTICS'),
    channels: attr(attrs, 'CHANNELS'),
    instreamId: attr(attrs, 'INSTREAM-ID'),
    attributes: attrs,
  };
  const resolvedUri = uri === null ? undefined : resolveUri(uri, base);
  if (resolvedUri !== undefined) rendition.resolvedUri = resolvedUri;
  return rendition;
}

export function buildMaster(lines: readonly Line[], opts: MasterBuildOptions): MasterPlaylist {
  const { base } = opts;
  const variants: Variant[] = [];
  const iframeVariants: Variant[] = [];
  const renditions: Rendition[] = [];
  const sessionKeys: Key[] = [];
  let version: number | null = null;
  let independentSegments = false;
  // EXT-X-STREAM-INF applies to the next URI line; other tags may sit in between (an interleaved
  // EXT-X-I-FRAME-STREAM-INF carries its URI in an attribute and must not consume that line).
  let pending: Attributes | null = null;
  const count = (): void => {
    if (variants.length + iframeVariants.length + renditions.length >= opts.maxSegments) {
      throw new GabeError('PLAYLIST_TOO_LARGE', `the playlist lists more than ${opts.maxSegments} entries`);
    }
  };
  for (const line of lines) {
    if (line.kind === 'uri') {
      if (pending === null) continue;
      count();
      variants.push(toVariant(pending, line.uri, false, base));
      pending = null;
      continue;
    }
    const a = line.attrs;
    switch (line.name) {
      case 'EXT-X-STREAM-INF':
        pending = a;
        break;
      case 'EXT-X-I-FRAME-STREAM-INF':
        if (a?.['URI'] === undefined) break;
        count();
        iframeVariants.push(toVariant(a, a['URI'], true, base));
        break;
      case 'EXT-X-MEDIA':
        if (a === null) break;
        count();
        renditions.push(toRendition(a, base));
        break;
      case 'EXT-X-SESSION-KEY':
        if (a?.['METHOD'] === undefined || a['METHOD'] === 'NONE') break;
        sessionKeys.push(toKey(a, a['METHOD'], base));
        break;
      case 'EXT-X-VERSION':
        version = parseNumber(trimBlanks(line.value));
        break;
      case 'EXT-X-INDEPENDENT-SEGMENTS':
        independentSegments = true;
        break;
    }
  }
  return {
    kind: 'master',
    ...(base === undefined ? {} : { baseUrl: base.href }),
    version,
    independentSegments,
    variants,
    iframeVariants,
    renditions,
    sessionKeys,
    defines: opts.defines,
  };
}
