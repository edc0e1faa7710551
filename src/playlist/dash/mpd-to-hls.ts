/**
 * An MPD seen as the HLS model (pure), so that one pipeline downloads both: the master's variants are
 * the video representations and its AUDIO renditions the audio adaptation sets; a variant's or
 * rendition's URI is the MPD's URL with a `#gabe-dash=` fragment naming the selection, and loading
 * that URL gives the selection's media playlist over every period. Everything the HLS path has
 * (resume, retries, URL refresh, live recording, discontinuity merging) then works unchanged.
 */
import type { InitSection, MasterPlaylist, MediaPlaylist, Rendition, Segment, Variant } from '../model.js';
import type { AdaptationSet, Mpd, Period, Representation } from './mpd-model.js';
import type { DashInit, DashSegment } from './mpd-segments.js';

const FRAGMENT = 'gabe-dash=';
const AUDIO_GROUP = 'dash-audio';

/** A video or audio representation: `set` is the adaptation set's position among the period's sets. */
export interface DashSelection {
  readonly kind: 'v' | 'a';
  readonly set: number;
  readonly rep: string;
}

/** The MPD URL naming a selection (fragments never go on the wire: HttpClient sends path and query). */
export function selectionUrl(mpdUrl: string, s: DashSelection): string {
  const u = new URL(mpdUrl);
  u.hash = `${FRAGMENT}${s.kind}:${s.set}:${encodeURIComponent(s.rep)}`;
  return u.href;
}

/** The selection a URL names, or null for a URL without one. */
export function selectionOf(url: string): DashSelection | null {
  const hash = URL.canParse(url) ? new URL(url).hash : '';
  const m = /^#gabe-dash=([va]):(\d+):(.*)$/.exec(hash);
  if (!m) return null;
  return { kind: m[1] as 'v' | 'a', set: Number(m[2]), rep: decodeURIComponent(m[3]!) };
}

export function withoutFragment(url: string): string {
  const u = new URL(url);
  u.hash = '';
  return u.href;
}

const isVideoSet = (a: AdaptationSet) => a.kind === 'video' && !a.trickMode;
const isAudioSet = (a: AdaptationSet) => a.kind === 'audio';

/** A representation's key in a selection: its @id, else `#<position>` in its set. */
function repKey(set: AdaptationSet, rep: Representation): string {
  return rep.id ?? `#${set.representations.indexOf(rep)}`;
}

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
  audio: boolean,
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
    audio: audio ? AUDIO_GROUP : null,
    video: null,
    subtitles: null,
    closedCaptions: null,
    iFrameOnly: false,
    attributes: {},
  };
}

function renditionOf(mpd: Mpd, period: Period, set: AdaptationSet, isDefault: boolean): Rendition | null {
  const rep = topBandwidth(set);
  if (!rep) return null;
  const uri = selectionUrl(mpd.url, {
    kind: 'a',
    set: period.adaptationSets.indexOf(set),
    rep: repKey(set, rep),
  });
  return {
    type: 'AUDIO',
    groupId: AUDIO_GROUP,
    name: set.labels[0] ?? set.lang ?? rep.lang ?? set.id ?? `audio ${period.adaptationSets.indexOf(set)}`,
    language: set.lang ?? rep.lang,
    assocLanguage: null,
    uri,
    resolvedUri: uri,
    default: isDefault,
    autoselect: true,
    forced: false,
    characteristics: null,
    channels: null,
    instreamId: null,
    attributes: {},
  };
}

/**
 * The master: one variant per video representation of the first period (every audio representation
 * when there is no video), one AUDIO rendition per audio adaptation set (its best representation).
 */
export function mpdToMaster(mpd: Mpd): MasterPlaylist {
  const period = mpd.periods[0];
  const sets = period?.adaptationSets ?? [];
  const audioSets = sets.filter(isAudioSet);
  const videoSets = sets.filter(isVideoSet);
  const variants: Variant[] = [];
  const renditions: Rendition[] = [];
  if (period && videoSets.length > 0) {
    for (const set of videoSets)
      for (const rep of set.representations)
        variants.push(variantOf(mpd, period, set, rep, audioSets.length > 0));
    const main = defaultAudio(audioSets);
    for (const set of audioSets) {
      const r = renditionOf(mpd, period, set, set === main);
      if (r) renditions.push(r);
    }
  } else if (period) {
    // Audio only: its representations are the variants (selectVariant then takes the best).
    for (const set of audioSets)
      for (const rep of set.representations) variants.push(variantOf(mpd, period, set, rep, false));
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

/** One period's part of a selection: the representation chosen in it. */
export interface PeriodTrack {
  readonly period: Period;
  readonly set: AdaptationSet;
  readonly rep: Representation;
}

/** Closest by bandwidth, then by height: the same rung of another period's ladder. */
function closest(set: AdaptationSet, like: Representation): Representation | undefined {
  const score = (r: Representation) =>
    Math.abs((r.bandwidth ?? 0) - (like.bandwidth ?? 0)) +
    Math.abs((r.height ?? 0) - (like.height ?? 0)) * 1e4;
  return [...set.representations].sort((a, b) => score(a) - score(b))[0];
}

/**
 * The representation of a selection in every period: in the first period the one named; in the others
 * the one with the same @id, else the closest one in the set at the same position (else the first set
 * of the same kind). Periods without such a set (an audio-less ad break) are left out.
 */
export function selectionTracks(mpd: Mpd, s: DashSelection): PeriodTrack[] {
  const first = mpd.periods[0];
  const set = first?.adaptationSets[s.set];
  const rep = set?.representations.find((r) => repKey(set, r) === s.rep);
  if (!first || !set || !rep) return [];
  const ofKind = set.kind === 'audio' ? isAudioSet : isVideoSet;
  const tracks: PeriodTrack[] = [{ period: first, set, rep }];
  for (const period of mpd.periods.slice(1)) {
    const sets = period.adaptationSets;
    let found: PeriodTrack | undefined;
    if (rep.id !== null) {
      for (const a of sets.filter(ofKind)) {
        const same = a.representations.find((r) => r.id === rep.id);
        if (same) found = { period, set: a, rep: same };
      }
    }
    if (!found) {
      const positioned = sets[s.set];
      const candidate =
        positioned && ofKind(positioned) && (set.lang === null || positioned.lang === set.lang)
          ? positioned
          : (sets.find((a) => ofKind(a) && a.lang === set.lang) ?? sets.find(ofKind));
      const r = candidate && closest(candidate, rep);
      if (candidate && r) found = { period, set: candidate, rep: r };
    }
    if (found) tracks.push(found);
  }
  return tracks;
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
