/**
 * The segments a DASH Representation addresses (pure): SegmentTemplate ($Number$ or SegmentTimeline),
 * SegmentList, SegmentBase (left to the sidx) and a bare BaseURL. Times are seconds from the Period's
 * start with presentationTimeOffset taken off; numbers are $Number$ values, stable across reloads of a
 * live MPD, so a recorder can tell new segments from ones it has.
 */
import { GabeError } from '../../service/errors.js';
import type { ByteRange } from '../model.js';
import type { Mpd, Period, Representation, SegmentInfo } from './mpd-model.js';
import { expandTemplate, mediaUrlTemplate } from './mpd-template.js';
import { resolveUrl } from './mpd-values.js';

export interface DashInit {
  url: string;
  range: ByteRange | null;
}

export interface DashSegment {
  url: string;
  range: ByteRange | null;
  /** Seconds from the period's start (presentationTimeOffset taken off). */
  start: number;
  /** Seconds. */
  duration: number;
  /** $Number$ value (SegmentList/timeline: startNumber + index): stable across MPD reloads. */
  number: number;
}

export type RepresentationSegments =
  | { kind: 'segments'; init: DashInit | null; segments: DashSegment[] }
  // SegmentBase: the segments are in the sidx at indexRange (absent: the sidx follows the init in the file's head)
  | {
      kind: 'index';
      url: string;
      indexRange: ByteRange | null;
      init: DashInit | null;
      periodDuration: number | null;
    };

/** More segments than this in one Representation is a broken or hostile manifest, not a video. */
export const MAX_DASH_SEGMENTS = 500_000;

/** A timeline entry expanded: media time `t` and duration `d` in timescale units. */
interface Slot {
  t: number;
  d: number;
}

/**
 * The segments `rep` addresses in `period`. A live (dynamic) MPD needs `nowMs` for SegmentTemplate
 * @duration (which segments exist now, within timeShiftBufferDepth) and for an open-ended
 * SegmentTimeline entry; without it, a template over a Period of unknown length is NOT_A_PLAYLIST.
 * SegmentBase gives kind 'index': read the sidx (media/sidx.ts) at indexRange, or find it in the
 * file's head; its init, when the MPD names none, is the bytes before the sidx.
 * Every URL returned is absolute http(s); more than MAX_DASH_SEGMENTS is NOT_A_PLAYLIST.
 */
export function representationSegments(
  mpd: Mpd,
  period: Period,
  rep: Representation,
  opts: { nowMs?: number } = {},
): RepresentationSegments {
  const result = addressed(mpd, period, rep, opts.nowMs);
  // A manifest can name any scheme (file:, data:, urn:); only http(s) ever leaves this module.
  if (result.kind === 'index') assertHttp(result.url);
  else for (const s of result.segments) assertHttp(s.url);
  if (result.init) assertHttp(result.init.url);
  return result;
}

function addressed(
  mpd: Mpd,
  period: Period,
  rep: Representation,
  nowMs: number | undefined,
): RepresentationSegments {
  const info = rep.segmentInfo;
  const init = initOf(rep);
  switch (rep.addressing) {
    case 'base':
      return {
        kind: 'index',
        url: rep.baseUrl,
        indexRange: info.indexRange,
        init,
        periodDuration: period.duration,
      };
    case 'none':
      return {
        kind: 'segments',
        init: null,
        segments: [{ url: rep.baseUrl, range: null, start: 0, duration: period.duration ?? 0, number: 1 }],
      };
    case 'list':
      return {
        kind: 'segments',
        init,
        segments: inWindow(mpd, period, nowMs, listSegments(mpd, period, info, nowMs)),
      };
    case 'template-timeline': {
      const slots = timelineSlots(info, periodEnd(mpd, period, info, nowMs));
      const urlOf = mediaUrlTemplate(info.mediaTemplate ?? '', rep, rep.baseUrl);
      const segments = slots.map((s, i) => templated(info, s, info.startNumber + i, urlOf));
      return { kind: 'segments', init, segments: inWindow(mpd, period, nowMs, segments) };
    }
    case 'template-number':
      return { kind: 'segments', init, segments: numberSegments(mpd, period, rep, nowMs) };
  }
}

function assertHttp(url: string): void {
  if (url.startsWith('https://') || url.startsWith('http://')) return;
  throw new GabeError(
    'NOT_A_PLAYLIST',
    `the DASH manifest addresses a segment outside http(s): ${url.slice(0, 80)}`,
  );
}

function initOf(rep: Representation): DashInit | null {
  const info = rep.segmentInfo;
  if (info.initTemplate !== null) {
    const path = expandTemplate(info.initTemplate, { id: rep.id, bandwidth: rep.bandwidth });
    return { url: resolveUrl(path, rep.baseUrl), range: null };
  }
  if (info.initUrl !== null) return { url: info.initUrl, range: info.initRange };
  return null;
}

type UrlOf = (number: number, time: number) => string;

function templated(info: SegmentInfo, slot: Slot, number: number, urlOf: UrlOf): DashSegment {
  return {
    url: urlOf(number, slot.t),
    range: null,
    start: (slot.t - info.presentationTimeOffset) / info.timescale,
    duration: slot.d / info.timescale,
    number,
  };
}

/**
 * Where an open-ended (`r = -1`) timeline entry stops, in media time (timescale units,
 * presentationTimeOffset included): the Period's end, or for a live MPD read at `nowMs` the time the
 * clock has reached if that is earlier. `clock` then says only whole segments count: one still being
 * produced is not available yet. Null when neither is known.
 */
interface TimelineEnd {
  at: number;
  clock: boolean;
}

function periodEnd(
  mpd: Mpd,
  period: Period,
  info: SegmentInfo,
  nowMs: number | undefined,
): TimelineEnd | null {
  const toMedia = (seconds: number) => seconds * info.timescale + info.presentationTimeOffset;
  const elapsed = mpd.type === 'dynamic' && nowMs !== undefined ? liveElapsed(mpd, period, nowMs) : null;
  if (
    elapsed !== null &&
    (period.duration === null || elapsed + info.availabilityTimeOffset < period.duration)
  ) {
    return { at: toMedia(elapsed + info.availabilityTimeOffset), clock: true };
  }
  return period.duration === null ? null : { at: toMedia(period.duration), clock: false };
}

/**
 * A live MPD's listed segments that have already left timeShiftBufferDepth at `nowMs` are gone from
 * the origin (5.3.9.5.3); the numbers of the rest are kept as listed.
 */
function inWindow(
  mpd: Mpd,
  period: Period,
  nowMs: number | undefined,
  segments: DashSegment[],
): DashSegment[] {
  if (mpd.type !== 'dynamic' || nowMs === undefined || mpd.timeShiftBufferDepth === null) return segments;
  const elapsed = liveElapsed(mpd, period, nowMs);
  if (elapsed === null) return segments;
  const oldest = elapsed - mpd.timeShiftBufferDepth;
  return segments.filter((s) => s.start + s.duration >= oldest);
}

/** Seconds since the Period began on the wall clock of a live MPD. */
function liveElapsed(mpd: Mpd, period: Period, nowMs: number): number | null {
  if (mpd.availabilityStartMs === null) return null;
  return (nowMs - mpd.availabilityStartMs) / 1000 - (period.start ?? 0);
}

/** SegmentTimeline in slots: `r` repeats, `r = -1` until the next S's `t` or the Period's end. */
function timelineSlots(info: SegmentInfo, end: TimelineEnd | null): Slot[] {
  const slots: Slot[] = [];
  const timeline = info.timeline ?? [];
  let t = info.presentationTimeOffset;
  timeline.forEach((s, i) => {
    if (s.t !== null) t = s.t;
    const nextT = timeline[i + 1]?.t ?? null;
    // A -1 with nothing after it to run up to (a live MPD read without a clock) is one segment.
    let open = 0;
    if (nextT !== null) open = Math.ceil((nextT - t) / s.d) - 1;
    else if (end?.clock) open = Math.floor((end.at - t) / s.d) - 1;
    else if (end) open = Math.ceil((end.at - t) / s.d) - 1;
    const repeats = s.r >= 0 ? s.r : Number.isFinite(open) ? Math.max(0, open) : 0;
    if (slots.length + repeats + 1 > MAX_DASH_SEGMENTS) throw tooMany(slots.length + repeats + 1);
    for (let k = 0; k <= repeats; k++) {
      slots.push({ t, d: s.d });
      t += s.d;
    }
  });
  return slots;
}

function listSegments(mpd: Mpd, period: Period, info: SegmentInfo, nowMs: number | undefined): DashSegment[] {
  const urls = info.segmentUrls ?? [];
  if (urls.length > MAX_DASH_SEGMENTS) throw tooMany(urls.length);
  // A timeline gives each SegmentURL its time; else they follow each other at @duration.
  const slots = info.timeline ? timelineSlots(info, periodEnd(mpd, period, info, nowMs)) : null;
  const d =
    info.duration ??
    (period.duration !== null && urls.length ? (period.duration * info.timescale) / urls.length : 0);
  return urls.map((u, i) => {
    const slot = slots?.[i] ?? clipped(info, period, info.presentationTimeOffset + i * d, d);
    return {
      url: u.url,
      range: u.range,
      start: (slot.t - info.presentationTimeOffset) / info.timescale,
      duration: slot.d / info.timescale,
      number: info.startNumber + i,
    };
  });
}

/**
 * SegmentTemplate@duration: segment k covers [k·d, (k+1)·d). A static MPD has ceil(period / d) of
 * them. A live one has those whose end is available at `nowMs` (availabilityTimeOffset earlier) and
 * whose start is still inside timeShiftBufferDepth (ISO/IEC 23009-1 5.3.9.5.3).
 */
function numberSegments(
  mpd: Mpd,
  period: Period,
  rep: Representation,
  nowMs: number | undefined,
): DashSegment[] {
  const info = rep.segmentInfo;
  const urlOf = mediaUrlTemplate(info.mediaTemplate ?? '', rep, rep.baseUrl);
  const seconds = info.duration === null ? null : info.duration / info.timescale;
  if (seconds === null) {
    // No @duration and no timeline: the template addresses a single segment covering the Period.
    const d = (period.duration ?? 0) * info.timescale;
    return [templated(info, { t: info.presentationTimeOffset, d }, info.startNumber, urlOf)];
  }
  let first = 0;
  let count = period.duration === null ? null : Math.ceil(period.duration / seconds - 1e-9);
  if (mpd.type === 'dynamic' && nowMs !== undefined) {
    const elapsed = liveElapsed(mpd, period, nowMs);
    if (elapsed !== null) {
      const available = Math.max(0, Math.floor((elapsed + info.availabilityTimeOffset) / seconds));
      const end = count === null ? available : Math.min(count, available);
      const depth = mpd.timeShiftBufferDepth;
      first = depth === null ? 0 : Math.min(end, Math.max(0, Math.floor((elapsed - depth) / seconds)));
      count = end - first;
    }
  }
  if (count === null) {
    throw new GabeError('NOT_A_PLAYLIST', 'the DASH manifest does not say how long its segment list is');
  }
  if (count > MAX_DASH_SEGMENTS) throw tooMany(count);
  const segments: DashSegment[] = [];
  for (let k = first; k < first + count; k++) {
    const t = info.presentationTimeOffset + k * info.duration!;
    segments.push(templated(info, clipped(info, period, t, info.duration!), info.startNumber + k, urlOf));
  }
  return segments;
}

/**
 * A @duration segment the Period's end cuts short plays only up to that end (ISO/IEC 23009-1
 * 5.3.9.5.3: the last segment may be shorter). One starting at or after the end keeps the MPD's
 * duration: the manifest contradicts itself there, and the segment is still listed.
 */
function clipped(info: SegmentInfo, period: Period, t: number, d: number): Slot {
  if (period.duration === null) return { t, d };
  const end = period.duration * info.timescale + info.presentationTimeOffset;
  return t < end && t + d > end ? { t, d: end - t } : { t, d };
}

function tooMany(count: number): GabeError {
  return new GabeError(
    'NOT_A_PLAYLIST',
    `the DASH manifest addresses ${count} segments in one representation (limit ${MAX_DASH_SEGMENTS})`,
    { details: { count, limit: MAX_DASH_SEGMENTS } },
  );
}
