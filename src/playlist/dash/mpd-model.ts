/**
 * The typed MPEG-DASH manifest model (ISO/IEC 23009-1). Durations and times are seconds (numbers);
 * missing values are `null`, never absent. Attributes a later layer may want verbatim
 * (`availabilityStartTime`, `mimeType` of a set) are kept as written. Every URL is absolute: the
 * parser resolves the BaseURL chain MPD > Period > AdaptationSet > Representation once, so the
 * segment function never needs the document again.
 */

import type { ByteRange } from '../model.js';

export type MpdType = 'static' | 'dynamic';

export type Addressing = 'base' | 'list' | 'template-timeline' | 'template-number' | 'none';

export type AdaptationKind = 'video' | 'audio' | 'text' | 'image' | 'other';

/** One `S` element of a SegmentTimeline, in timescale units; `t` null means "right after the previous". */
export interface TimelineEntry {
  readonly t: number | null;
  readonly d: number;
  /** Repeat count as written: -1 repeats until the next S's `t` or the period's end. */
  readonly r: number;
}

/**
 * The effective segment information of a Representation: SegmentBase, SegmentList and
 * SegmentTemplate merged attribute by attribute from Period, AdaptationSet and Representation
 * (ISO/IEC 23009-1 5.3.9.1: a lower level's attribute overrides, an absent one is inherited).
 */
export interface SegmentInfo {
  readonly timescale: number;
  readonly presentationTimeOffset: number;
  /** @duration in timescale units, null when absent. */
  readonly duration: number | null;
  readonly startNumber: number;
  readonly availabilityTimeOffset: number;
  readonly timeline: readonly TimelineEntry[] | null;
  /** SegmentBase@indexRange / SegmentList / SegmentTemplate@indexRange. */
  readonly indexRange: ByteRange | null;
  /** Initialization@sourceURL resolved (null: the Representation's own BaseURL) and @range. */
  readonly initUrl: string | null;
  readonly initRange: ByteRange | null;
  /** SegmentTemplate@media / @initialization, as written (identifiers not yet substituted). */
  readonly mediaTemplate: string | null;
  readonly initTemplate: string | null;
  /** SegmentList's SegmentURLs: media resolved against the Representation's BaseURL. */
  readonly segmentUrls: readonly { readonly url: string; readonly range: ByteRange | null }[] | null;
}

export interface Representation {
  readonly id: string | null;
  readonly bandwidth: number | null;
  readonly width: number | null;
  readonly height: number | null;
  /** @frameRate read as a number ("30000/1001" included). */
  readonly frameRate: number | null;
  readonly codecs: string | null;
  /** Effective: the Representation's own, else its AdaptationSet's. */
  readonly mimeType: string | null;
  readonly audioSamplingRate: number | null;
  /** AudioChannelConfiguration (urn:mpeg:dash:23003:3 scheme) on the Representation, else its set. */
  readonly audioChannels: number | null;
  readonly lang: string | null;
  /** The fully resolved BaseURL of the chain MPD > Period > AdaptationSet > Representation. */
  readonly baseUrl: string;
  readonly addressing: Addressing;
  /** ContentProtection on the Representation or its AdaptationSet. */
  readonly protected: boolean;
  /**
   * Every (sub)segment starts with a SAP of type 1 or 2, a keyframe that decodes alone: @startWithSAP
   * or @subsegmentStartsWithSAP (effective) is 1 or 2. Without it a segment may begin mid-GOP.
   */
  readonly startsWithSap: boolean;
  readonly segmentInfo: SegmentInfo;
}

export interface AdaptationSet {
  readonly id: string | null;
  /** @contentType as written. */
  readonly contentType: string | null;
  /** @mimeType as written on the set. */
  readonly mimeType: string | null;
  readonly kind: AdaptationKind;
  readonly lang: string | null;
  /** Role@value of each Role element, in order; null for a Role without @value (it is in the file). */
  readonly roles: readonly (string | null)[];
  readonly labels: readonly string[];
  /** Has the `http://dashif.org/guidelines/trickmode` Essential/SupplementalProperty. */
  readonly trickMode: boolean;
  /** DRM systems of the ContentProtection elements directly on the set. */
  readonly contentProtection: readonly string[];
  readonly representations: readonly Representation[];
}

export interface Period {
  readonly id: string | null;
  /** ISO/IEC 23009-1 5.3.2.1: explicit, else derived from the previous period; null if not derivable. */
  readonly start: number | null;
  readonly duration: number | null;
  readonly baseUrl: string;
  readonly adaptationSets: readonly AdaptationSet[];
}

export interface Mpd {
  readonly type: MpdType;
  /** The URL the MPD was resolved against (final URL after redirects). */
  readonly url: string;
  readonly mediaPresentationDuration: number | null;
  readonly availabilityStartTime: string | null;
  readonly availabilityStartMs: number | null;
  readonly publishTime: string | null;
  readonly minimumUpdatePeriod: number | null;
  readonly timeShiftBufferDepth: number | null;
  readonly suggestedPresentationDelay: number | null;
  readonly minBufferTime: number | null;
  readonly locations: readonly string[];
  /** UTCTiming elements: how a live client syncs its clock to the origin's (schemeIdUri, value). */
  readonly utcTimings: readonly { readonly scheme: string; readonly value: string }[];
  /** Every DRM system named anywhere (cenc, widevine, playready, clearkey, else the scheme URI). */
  readonly drmSystems: readonly string[];
  /** True when any ContentProtection element is present. */
  readonly drm: boolean;
  readonly periods: readonly Period[];
}
