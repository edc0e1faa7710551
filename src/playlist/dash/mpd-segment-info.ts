/**
 * The effective segment information of a Representation (pure). ISO/IEC 23009-1 5.3.9.1: SegmentBase,
 * SegmentList and SegmentTemplate may sit on the Period, the AdaptationSet and the Representation;
 * the deepest level that has one decides the addressing, and the elements of that kind on the levels
 * above it supply every attribute or child the deeper one leaves out.
 */
import type { Addressing, SegmentInfo, TimelineEntry } from './mpd-model.js';
import {
  attr,
  child,
  children,
  parseByteRange,
  parseNumber,
  resolveUrl,
  type XmlNode,
} from './mpd-values.js';

const KINDS = ['SegmentTemplate', 'SegmentList', 'SegmentBase'] as const;
type Kind = (typeof KINDS)[number];

/** `levels` from the Period down to the Representation. */
export function segmentInfoOf(
  levels: readonly XmlNode[],
  baseUrl: string,
): { addressing: Addressing; info: SegmentInfo } {
  const kind = deepestKind(levels);
  // Deepest first, so the first element holding an attribute or child is the effective one.
  const chain = kind ? levels.flatMap((level) => children(level, kind).slice(0, 1)).reverse() : [];
  const pick = (name: string): string | null => {
    for (const node of chain) {
      const value = attr(node, name);
      if (value !== null) return value;
    }
    return null;
  };
  const pickChild = (name: string): XmlNode | undefined => chain.find((node) => child(node, name));
  const timelineNode = child(pickChild('SegmentTimeline'), 'SegmentTimeline');
  const initNode = child(pickChild('Initialization'), 'Initialization');
  const listNode = kind === 'SegmentList' ? pickChild('SegmentURL') : undefined;
  const info: SegmentInfo = {
    timescale: positive(parseNumber(pick('timescale'))) ?? 1,
    presentationTimeOffset: parseNumber(pick('presentationTimeOffset')) ?? 0,
    duration: positive(parseNumber(pick('duration'))),
    startNumber: integer(parseNumber(pick('startNumber'))) ?? 1,
    availabilityTimeOffset: availabilityTimeOffset(pick('availabilityTimeOffset')),
    timeline: timelineNode ? timelineOf(timelineNode) : null,
    indexRange: parseByteRange(pick('indexRange')),
    initUrl: initNode ? resolveUrl(attr(initNode, 'sourceURL'), baseUrl) : null,
    initRange: initNode ? parseByteRange(attr(initNode, 'range')) : null,
    mediaTemplate: kind === 'SegmentTemplate' ? pick('media') : null,
    initTemplate: kind === 'SegmentTemplate' ? pick('initialization') : null,
    segmentUrls: listNode
      ? children(listNode, 'SegmentURL').map((s) => ({
          url: resolveUrl(attr(s, 'media'), baseUrl),
          range: parseByteRange(attr(s, 'mediaRange')),
        }))
      : null,
  };
  return { addressing: addressingOf(kind, info), info };
}

function deepestKind(levels: readonly XmlNode[]): Kind | null {
  for (let i = levels.length - 1; i >= 0; i--) {
    const found = KINDS.find((kind) => children(levels[i], kind).length > 0);
    if (found) return found;
  }
  return null;
}

function addressingOf(kind: Kind | null, info: SegmentInfo): Addressing {
  if (kind === 'SegmentTemplate') return info.timeline ? 'template-timeline' : 'template-number';
  if (kind === 'SegmentList') return 'list';
  if (kind === 'SegmentBase') return 'base';
  return 'none';
}

function timelineOf(node: XmlNode): TimelineEntry[] {
  return children(node, 'S').flatMap((s) => {
    const d = positive(parseNumber(attr(s, 'd')));
    if (d === null) return [];
    const r = attr(s, 'r')?.trim();
    return [{ t: parseNumber(attr(s, 't')), d, r: r === '-1' ? -1 : (integer(parseNumber(r ?? null)) ?? 0) }];
  });
}

/** `INF` means every segment is available as soon as the stream starts (low-latency chunked). */
function availabilityTimeOffset(value: string | null): number {
  if (value?.trim() === 'INF') return Number.POSITIVE_INFINITY;
  return parseNumber(value) ?? 0;
}

function positive(n: number | null): number | null {
  return n !== null && n > 0 ? n : null;
}

function integer(n: number | null): number | null {
  return n !== null && Number.isSafeInteger(n) ? n : null;
}
