/**
 * What a `#gabe-dash=` URL names (pure): a video, audio or subtitle representation of the MPD's first
 * period, and the representation that continues it in each later period. The set kinds a download
 * takes are decided here too: mpd-to-hls.ts builds the master from the same ones.
 */
import type { AdaptationSet, Mpd, Period, Representation } from './mpd-model.js';

const FRAGMENT = 'gabe-dash=';

/**
 * A video, audio or subtitle (`s`) representation: `set` is the adaptation set's position among the
 * period's sets.
 */
export interface DashSelection {
  readonly kind: 'v' | 'a' | 's';
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
  const m = /^#gabe-dash=([vas]):(\d+):(.*)$/.exec(hash);
  if (!m) return null;
  return { kind: m[1] as DashSelection['kind'], set: Number(m[2]), rep: decodeURIComponent(m[3]!) };
}

export function withoutFragment(url: string): string {
  const u = new URL(url);
  u.hash = '';
  return u.href;
}

export const isVideoSet = (a: AdaptationSet) => a.kind === 'video' && !a.trickMode;
export const isAudioSet = (a: AdaptationSet) => a.kind === 'audio';
/** Subtitles as text files, WebVTT or TTML (one per period, or segments). */
const TEXT_TYPES = new Set(['text/vtt', 'application/ttml+xml']);
/** Subtitles in fMP4 segments: TTML (stpp, IMSC1) or WebVTT (wvtt) samples, ISO/IEC 14496-30. */
const TEXT_CODECS = /^(stpp|wvtt)\b/i;

/**
 * A text set Gabe carries: WebVTT or TTML, as text files or in fMP4 segments (a whole MP4 file named by
 * its BaseURL alone is a progressive one, whose samples lie in its sample tables: left out).
 */
export const isTextSet = (a: AdaptationSet) =>
  a.kind === 'text' &&
  a.representations.some(
    (r) =>
      isTextFile(r) ||
      (r.mimeType?.trim().toLowerCase() === 'application/mp4' &&
        r.addressing !== 'none' &&
        TEXT_CODECS.test(r.codecs?.trim() ?? '')),
  );

/** A representation of subtitles as text files (WebVTT, TTML), not in ISO BMFF. */
export const isTextFile = (r: Representation) => TEXT_TYPES.has(r.mimeType?.trim().toLowerCase() ?? '');

/** The sets a selection of this set's kind is made among, in every period. */
function kindOf(set: AdaptationSet): (a: AdaptationSet) => boolean {
  return set.kind === 'audio' ? isAudioSet : set.kind === 'text' ? isTextSet : isVideoSet;
}

/** A representation's key in a selection: its @id, else `#<position>` in its set. */
export function repKey(set: AdaptationSet, rep: Representation): string {
  return rep.id ?? `#${set.representations.indexOf(rep)}`;
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
  const ofKind = kindOf(set);
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
