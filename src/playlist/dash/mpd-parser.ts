/**
 * MPEG-DASH manifest parser (ISO/IEC 23009-1): text and final URL in, typed model out (pure).
 * fast-xml-parser reads the XML with entity processing off, so a DOCTYPE entity bomb has nothing to
 * expand, and namespace prefixes dropped, so `<mpd:MPD>` and `<MPD>` read alike. The model resolves
 * inheritance (BaseURL chain, common attributes, segment information) once, here.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { GabeError } from '../../service/errors.js';
import type { AdaptationKind, AdaptationSet, Mpd, Period, Representation } from './mpd-model.js';
import { segmentInfoOf } from './mpd-segment-info.js';
import {
  attr,
  child,
  children,
  drmSystemName,
  parseDateTime,
  parseDuration,
  parseFrameRate,
  parseNumber,
  resolveUrl,
  text,
  type XmlNode,
} from './mpd-values.js';

const TRICK_MODE = 'http://dashif.org/guidelines/trickmode';

/** Leading noise an MPD may have before its root: BOM, whitespace, XML declaration, comments, DOCTYPE. */
const PROLOGUE = /^(?:\uFEFF|\s+|<\?xml[^>]*\?>|<!--[\s\S]*?-->|<!DOCTYPE[^[>]*(?:\[[\s\S]*?\])?\s*>)*/;

/** Sniffs whether `text` is an MPD: the root element, with or without a namespace prefix, is `MPD`. */
export function isMpd(text: string): boolean {
  const rest = text.slice(PROLOGUE.exec(text)?.[0].length ?? 0);
  return /^<(?:[A-Za-z_][\w.-]*:)?MPD[\s/>]/.test(rest);
}

const xml = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  alwaysCreateTextNode: true,
  trimValues: true,
  isArray: (_name, _path, _leaf, isAttribute) => !isAttribute,
});

function notAnMpd(reason: string, cause?: unknown): GabeError {
  return new GabeError('NOT_A_PLAYLIST', `the URL returned ${reason}, not a DASH manifest (MPD)`, {
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Parses an MPD; `url` is its final URL after redirects, the base of relative BaseURLs. */
export function parseMpd(text: string, url: string): Mpd {
  if (!isMpd(text)) throw notAnMpd('something else');
  const body = text.replace(/^\uFEFF/, '');
  const valid = XMLValidator.validate(body);
  if (valid !== true) throw notAnMpd(`broken XML (${valid.err.msg}, line ${valid.err.line})`);
  let root: XmlNode | undefined;
  try {
    root = child(xml.parse(body) as XmlNode, 'MPD');
  } catch (err) {
    throw notAnMpd('unreadable XML', err);
  }
  if (!root) throw notAnMpd('an XML document without an MPD root');
  return mpdOf(root, url);
}

function mpdOf(root: XmlNode, url: string): Mpd {
  const type = attr(root, 'type')?.trim() === 'dynamic' ? 'dynamic' : 'static';
  const mediaPresentationDuration = parseDuration(attr(root, 'mediaPresentationDuration'));
  const baseUrl = resolveUrl(firstBaseUrl(root), url);
  const availabilityStartTime = attr(root, 'availabilityStartTime');
  const periods = periodsOf(children(root, 'Period'), type, mediaPresentationDuration, baseUrl);
  const systems = new Set<string>();
  const protections = allContentProtection(root);
  for (const cp of protections) systems.add(drmSystemName(attr(cp, 'schemeIdUri')));
  return {
    type,
    url,
    mediaPresentationDuration,
    availabilityStartTime,
    availabilityStartMs: parseDateTime(availabilityStartTime),
    publishTime: attr(root, 'publishTime'),
    minimumUpdatePeriod: parseDuration(attr(root, 'minimumUpdatePeriod')),
    timeShiftBufferDepth: parseDuration(attr(root, 'timeShiftBufferDepth')),
    suggestedPresentationDelay: parseDuration(attr(root, 'suggestedPresentationDelay')),
    minBufferTime: parseDuration(attr(root, 'minBufferTime')),
    locations: children(root, 'Location').flatMap((l) => {
      const t = text(l);
      return t ? [resolveUrl(t, url)] : [];
    }),
    utcTimings: children(root, 'UTCTiming').map((u) => ({
      scheme: attr(u, 'schemeIdUri') ?? '',
      value: attr(u, 'value') ?? '',
    })),
    drmSystems: [...systems].sort(),
    drm: protections.length > 0,
    periods,
  };
}

/**
 * ISO/IEC 23009-1 5.3.2.1: a Period starts at its @start, else where the previous one ends (its start
 * plus its @duration), else at 0 if it is the first Period of a static MPD. Its duration is @duration,
 * else up to the next Period's start, else (the last) up to mediaPresentationDuration.
 */
function periodsOf(nodes: XmlNode[], type: string, mpdDuration: number | null, base: string): Period[] {
  const starts: (number | null)[] = [];
  nodes.forEach((node, i) => {
    const explicit = parseDuration(attr(node, 'start'));
    const prevStart = starts[i - 1] ?? null;
    const prevDuration = i > 0 ? parseDuration(attr(nodes[i - 1], 'duration')) : null;
    if (explicit !== null) starts.push(explicit);
    else if (prevStart !== null && prevDuration !== null) starts.push(prevStart + prevDuration);
    else starts.push(i === 0 && type === 'static' ? 0 : null);
  });
  return nodes.map((node, i) => {
    const start = starts[i] ?? null;
    const next = i + 1 < nodes.length ? (starts[i + 1] ?? null) : mpdDuration;
    const duration =
      parseDuration(attr(node, 'duration')) ?? (start !== null && next !== null ? next - start : null);
    const baseUrl = resolveUrl(firstBaseUrl(node), base);
    return {
      id: attr(node, 'id'),
      start,
      duration,
      baseUrl,
      adaptationSets: children(node, 'AdaptationSet').map((set) => adaptationSetOf(node, set, baseUrl)),
    };
  });
}

function adaptationSetOf(period: XmlNode, set: XmlNode, periodBase: string): AdaptationSet {
  const baseUrl = resolveUrl(firstBaseUrl(set), periodBase);
  const ownProtection = children(set, 'ContentProtection');
  const representations = children(set, 'Representation').map((rep) =>
    representationOf(period, set, rep, baseUrl, ownProtection.length > 0),
  );
  const properties = [...children(set, 'EssentialProperty'), ...children(set, 'SupplementalProperty')];
  return {
    id: attr(set, 'id'),
    contentType: attr(set, 'contentType'),
    mimeType: attr(set, 'mimeType'),
    kind: kindOf(set, children(set, 'Representation')),
    lang: attr(set, 'lang'),
    roles: children(set, 'Role').map((r) => attr(r, 'value')),
    labels: children(set, 'Label').map((l) => text(l) ?? ''),
    trickMode: properties.some((p) => attr(p, 'schemeIdUri')?.trim() === TRICK_MODE),
    contentProtection: ownProtection.map((cp) => drmSystemName(attr(cp, 'schemeIdUri'))),
    representations,
  };
}

function representationOf(
  period: XmlNode,
  set: XmlNode,
  rep: XmlNode,
  setBase: string,
  setProtected: boolean,
): Representation {
  const own = (name: string): string | null => attr(rep, name) ?? attr(set, name);
  const baseUrl = resolveUrl(firstBaseUrl(rep), setBase);
  const { addressing, info } = segmentInfoOf([period, set, rep], baseUrl);
  return {
    id: attr(rep, 'id'),
    bandwidth: parseNumber(attr(rep, 'bandwidth')),
    width: parseNumber(own('width')),
    height: parseNumber(own('height')),
    frameRate: parseFrameRate(own('frameRate')),
    codecs: own('codecs'),
    mimeType: own('mimeType'),
    audioSamplingRate: parseNumber(own('audioSamplingRate')?.trim().split(/\s+/)[0] ?? null),
    lang: own('lang'),
    audioChannels: audioChannels(rep) ?? audioChannels(set),
    baseUrl,
    addressing,
    protected: setProtected || children(rep, 'ContentProtection').length > 0,
    startsWithSap: [own('startWithSAP'), own('subsegmentStartsWithSAP')].some((v) => v === '1' || v === '2'),
    segmentInfo: info,
  };
}

const KINDS: readonly AdaptationKind[] = ['video', 'audio', 'text', 'image'];

/** @contentType, else the MIME type's top level, else the codecs (ISO/IEC 23009-1 5.3.3.2). */
function kindOf(set: XmlNode, reps: XmlNode[]): AdaptationKind {
  const contentType = attr(set, 'contentType')?.trim().toLowerCase();
  const listed = KINDS.find((k) => k === contentType);
  if (listed) return listed;
  const mimes = [attr(set, 'mimeType'), ...reps.map((r) => attr(r, 'mimeType'))];
  for (const mime of mimes) {
    const top = mime?.trim().toLowerCase().split('/')[0];
    const kind = KINDS.find((k) => k === top);
    if (kind) return kind;
    if (mime && /ttml|vtt/i.test(mime)) return 'text';
  }
  const codecs = [attr(set, 'codecs'), ...reps.map((r) => attr(r, 'codecs'))].join(',').toLowerCase();
  if (/\b(avc[1-4]|hvc1|hev1|dvh[e1]|dva[1v]|vp0[89]|av01)\b/.test(codecs)) return 'video';
  if (/\b(mp4a|ac-3|ec-3|ac-4|opus|flac|dts[cehlx])\b/.test(codecs)) return 'audio';
  if (/\b(stpp|wvtt)\b/.test(codecs)) return 'text';
  return 'other';
}

/** The channel count of the MPEG scheme; other schemes (Dolby's bit masks) are not counts. */
function audioChannels(node: XmlNode): number | null {
  const config = children(node, 'AudioChannelConfiguration').find((c) =>
    attr(c, 'schemeIdUri')?.includes('23003:3:audio_channel_configuration'),
  );
  return parseNumber(attr(config, 'value'));
}

function firstBaseUrl(node: XmlNode): string | null {
  const first = child(node, 'BaseURL');
  return first ? text(first) : null;
}

/** Every ContentProtection element, wherever it sits (MPD, Period, AdaptationSet, Representation). */
function allContentProtection(root: XmlNode): XmlNode[] {
  const found: XmlNode[] = [...children(root, 'ContentProtection')];
  for (const period of children(root, 'Period')) {
    found.push(...children(period, 'ContentProtection'));
    for (const set of children(period, 'AdaptationSet')) {
      found.push(...children(set, 'ContentProtection'));
      for (const rep of children(set, 'Representation')) found.push(...children(rep, 'ContentProtection'));
    }
  }
  return found;
}
