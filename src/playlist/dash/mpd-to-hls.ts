/**
 * An MPD seen as the HLS model (pure), so that one pipeline downloads both: the master's variants are
 * the video representations, its AUDIO renditions the audio adaptation sets and its SUBTITLES
 * renditions the WebVTT and TTML text sets; a variant's or rendition's URI is the MPD's URL with a
 * `#gabe-dash=` fragment naming the selection (mpd-selection.ts), and loading that URL gives the
 * selection's media playlist over every period. Everything the HLS path has
 * (resume, retries, URL refresh, live recording, discontinuity merging) then works unchanged.
 */
import type { InitSection, MasterPlaylist, MediaPlaylist, Rendition, Segment, Variant } from '../model.js';
import type { AdaptationSet, Mpd, Period, Representation } from './mpd-model.js';
import type { DashInit, DashSegment } from './mpd-segments.js';
import {
  type DashSelection,
  isAudioSet,
  isTextSet,
  isVideoSet,
  repKey,
  selectionUrl,
} from './mpd-selection.js';

const AUDIO_GROUP = 'dash-audio';
const SUBTITLE_GROUP = 'dash-subtitles';

/** The DRM systems on the sets a download could take ("cenc, widevine"), or null when clear. */
export function mpdDrm(mpd: Mpd): string | null {
  const systems = new Set<string>();
  let found = false;
  for (const p of mpd.periods) {
    for (const a of p.adaptationSets) {
      if (!isVideoSet(a) && !isAudioSet(a)) continue;
      for (const s of a.contentProtection) systems.add(s);
      if (a.contentProtection.length > 0 || a.representations.some((r) => r.protected)) found = true;
    }
  }
  if (!found) return null;
  for (const s of mpd.drmSystems) systems.add(s);
  return systems.size > 0 ? [...systems].join(', ') : 'ContentProtection';
}

/** The audio set a player starts with: Role main, else the first. */
function defaultAudio(sets: readonly AdaptationSet[]): AdaptationSet | undefined {
  return sets.find((a) => a.roles.includes('main')) ?? sets[0];
}

function topBandwidth(set: AdaptationSet): Representation | undefined {
  return [...set.representations].sort((a, b) => (b.bandwidth ?? 0) - (a.bandwidth ?? 0))[0];
}

function variantOf(
  mpd: Mpd,
  period: Period,
  set: AdaptationSet,
  rep: Representation,
  groups: { audio: boolean; subtitles: boolean },
): Variant {
  const s: DashSelection = { kind: 'v', set: period.adaptationSets.indexOf(set), rep: repKey(set, rep) };
  const uri = selectionUrl(mpd.url, s);
  return {
    uri,
    resolvedUri: uri,
    bandwidth: rep.bandwidth,
    averageBandwidth: null,
    resolution: rep.width && rep.height ? { width: rep.width, height: rep.height } : null,
    codecs: rep.codecs,
    frameRate: rep.frameRate,
    audio: groups.audio ? AUDIO_GROUP : null,
    video: null,
    subtitles: groups.subtitles ? SUBTITLE_GROUP : null,
    closedCaptions: null,
    iFrameOnly: false,
    attributes: {},
  };
}

function renditionOf(
  mpd: Mpd,
  period: Period,
  set: AdaptationSet,
  type: 'AUDIO' | 'SUBTITLES',
  isDefault: boolean,
): Rendition | null {
  const rep = topBandwidth(set);
  if (!rep) return null;
  const at = period.adaptationSets.indexOf(set);
  const uri = selectionUrl(mpd.url, { kind: type === 'AUDIO' ? 'a' : 's', set: at, rep: repKey(set, rep) });
  const what = type === 'AUDIO' ? 'audio' : 'subtitles';
  return {
    type,
    groupId: type === 'AUDIO' ? AUDIO_GROUP : SUBTITLE_GROUP,
    name: set.labels[0] ?? set.lang ?? rep.lang ?? set.id ?? `${what} ${at}`,
    language: set.lang ?? rep.lang,
    assocLanguage: null,
    uri,
    resolvedUri: uri,
    default: isDefault,
    autoselect: true,
    // ISO/IEC 23009-1 5.8.5.5: the Role that marks subtitles shown whatever the language chosen.
    forced: set.roles.includes('forced-subtitle'),
    characteristics: null,
    channels: null,
    instreamId: null,
    attributes: {},
  };
}

/**
 * The master: one variant per video representation of the first period (every audio representation
 * when there is no video), one AUDIO rendition per audio adaptation set (its best representation), one
 * SUBTITLES rendition per WebVTT or TTML text set.
 */
export function mpdToMaster(mpd: Mpd): MasterPlaylist {
  const period = mpd.periods[0];
  const sets = period?.adaptationSets ?? [];
  const audioSets = sets.filter(isAudioSet);
  const videoSets = sets.filter(isVideoSet);
  const textSets = sets.filter(isTextSet);
  const variants: Variant[] = [];
  const renditions: Rendition[] = [];
  if (period && videoSets.length > 0) {
    const groups = { audio: audioSets.length > 0, subtitles: textSets.length > 0 };
    for (const set of videoSets)
      for (const rep of set.representations) variants.push(variantOf(mpd, period, set, rep, groups));
    const main = defaultAudio(audioSets);
    for (const set of audioSets) {
      const r = renditionOf(mpd, period, set, 'AUDIO', set === main);
      if (r) renditions.push(r);
    }
    for (const set of textSets) {
      const r = renditionOf(mpd, period, set, 'SUBTITLES', set.roles.includes('main'));
      if (r) renditions.push(r);
    }
  } else if (period) {
    // Audio only: its representations are the variants (selectVariant then takes the best).
    const groups = { audio: false, subtitles: false };
    for (const set of audioSets)
      for (const rep of set.representations) variants.push(variantOf(mpd, period, set, rep, groups));
  }
  return {
    kind: 'master',
    baseUrl: mpd.url,
    version: null,
    independentSegments: true,
    variants,
    iframeVariants: [],
    renditions,
    sessionKeys: [],
    defines: {},
  };
}

/** A period's segments, as the segment function or the sidx gave them. */
export interface PeriodSegments {
  readonly init: DashInit | null;
  readonly segments: readonly DashSegment[];
  /** Each segment starts with a keyframe (the representation's startsWithSap). */
  readonly independent?: boolean;
}

function mapOf(init: DashInit | null): InitSection | null {
  return init ? { uri: init.url, resolvedUri: init.url, byterange: init.range, keys: [] } : null;
}

/**
 * Seconds a live MPD's reloads are paced by, beyond a segment's duration. The live recorder reloads
 * every target duration and calls a stream stalled after three unchanged: an MPD that changes only
 * every minimumUpdatePeriod must not look stalled between two updates, but reloads must also come
 * often enough that nothing leaves the timeShiftBufferDepth window between them (a SegmentTemplate
 * MPD's segments come from the clock, whatever its minimumUpdatePeriod says).
 */
function updatePace(mpd: Mpd): number {
  const update = mpd.minimumUpdatePeriod ?? 0;
  const depth = mpd.timeShiftBufferDepth;
  return depth !== null && depth > 0 ? Math.min(update, depth / 3) : update;
}

/**
 * The media playlist of a selection: its periods' segments in order, each period after the first
 * starting a discontinuity (new init, new timestamps). `msn` must name the same segment across reloads
 * (the live recorder appends what is past the last one, also when a live MPD turns static at its end):
 * $Number$ for a one-period MPD; the position over several periods, whose numbers may restart.
 */
export function dashMediaPlaylist(mpd: Mpd, parts: readonly PeriodSegments[]): MediaPlaylist {
  const live = mpd.type === 'dynamic';
  const byNumber = parts.length === 1;
  const segments: Segment[] = [];
  let longest = 0;
  parts.forEach((part, p) => {
    const map = mapOf(part.init);
    part.segments.forEach((s, i) => {
      longest = Math.max(longest, s.duration);
      segments.push({
        uri: s.url,
        resolvedUri: s.url,
        duration: s.duration,
        msn: byNumber ? s.number : segments.length,
        byterange: s.range,
        discontinuity: p > 0 && i === 0,
        discontinuitySequence: p,
        keys: [],
        map,
        gap: false,
      });
    });
  });
  const target = Math.max(1, Math.ceil(Math.max(longest, live ? updatePace(mpd) : 0)));
  return {
    kind: 'media',
    baseUrl: mpd.url,
    version: null,
    targetDuration: target,
    mediaSequence: segments[0]?.msn ?? 0,
    discontinuitySequence: 0,
    skippedSegments: 0,
    endlist: !live,
    playlistType: live ? null : 'VOD',
    iFramesOnly: false,
    // Only what the MPD promises: a clip then needs no probe for the keyframe before its start.
    independentSegments: parts.length > 0 && parts.every((p) => p.independent === true),
    segments,
  };
}
