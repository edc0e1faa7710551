/**
 * An MPD through the HLS pipeline: the MPD becomes a master playlist, a `#gabe-dash=` selection URL
 * the media playlist of that representation over every period (playlist/dash/mpd-to-hls.ts).
 * SegmentBase representations list their segments in a sidx box in the media file: it is fetched
 * here (the indexRange, else the file's head), through the job's client with its retries.
 */

import { findSidx, parseSidx, type SidxReference } from '../../media/sidx.js';
import type { HttpClient } from '../../net/client.js';
import { type RetryPolicy, withRetry } from '../../net/retry.js';
import type { Mpd } from '../../playlist/dash/mpd-model.js';
import { parseMpd } from '../../playlist/dash/mpd-parser.js';
import { type DashSegment, representationSegments } from '../../playlist/dash/mpd-segments.js';
import { isTextFile, selectionOf, selectionTracks } from '../../playlist/dash/mpd-selection.js';
import {
  dashMediaPlaylist,
  mpdDrm,
  mpdToMaster,
  type PeriodSegments,
} from '../../playlist/dash/mpd-to-hls.js';
import type { ByteRange, Playlist } from '../../playlist/model.js';
import { GabeError } from '../../service/errors.js';

/** Bytes read from a SegmentBase file without indexRange to find its sidx (init + sidx fit in it). */
const HEAD_BYTES = 64 * 1024;
/** Largest whole file taken from an origin that ignores Range when only a sidx or a head was asked for. */
const IGNORED_RANGE_BYTES = 16 * 1024 * 1024;
/** Heads read looking for a sidx before giving up (a file whose first boxes are that large is odd). */
const MAX_HEAD_READS = 8;
/** Largest sidx read (a 2-hour file of 1 s subsegments has a ~90 KB one). */
const MAX_SIDX_BYTES = 4 * 1024 * 1024;
/** Nested sidx (referenceType 1) followed at most this deep. */
const MAX_SIDX_DEPTH = 4;

export interface DashFetch {
  http: HttpClient;
  policy: RetryPolicy;
  signal?: AbortSignal;
  onRetry?: (err: Error, attempt: number, delayMs: number) => void;
}

/** The MPD as a playlist: the master for the MPD's own URL, a media playlist for a selection URL. */
export async function dashPlaylist(
  f: DashFetch,
  text: string,
  finalUrl: string,
  requestedUrl: string,
  nowMs = Date.now(),
): Promise<Playlist> {
  const mpd = parseMpd(text, finalUrl);
  const selection = selectionOf(requestedUrl);
  if (!selection) {
    const drm = mpdDrm(mpd);
    if (drm) throw new GabeError('DRM', `the stream is DRM-protected (${drm}); Gabe cannot download it`);
    const master = mpdToMaster(mpd);
    if (master.variants.length === 0) {
      throw new GabeError('NOT_A_PLAYLIST', 'the DASH manifest (MPD) has no video or audio representation');
    }
    return master;
  }
  const tracks = selectionTracks(mpd, selection);
  if (tracks.length === 0) {
    throw new GabeError('NOT_A_PLAYLIST', `the MPD no longer has the representation ${selection.rep}`);
  }
  if (tracks.some((t) => t.rep.protected || t.set.contentProtection.length > 0)) {
    throw new GabeError('DRM', `the stream is DRM-protected (${mpdDrm(mpd) ?? 'ContentProtection'})`);
  }
  const parts: PeriodSegments[] = [];
  for (const t of tracks)
    parts.push({ ...(await periodSegments(f, mpd, t, nowMs)), independent: t.rep.startsWithSap });
  return dashMediaPlaylist(mpd, parts);
}

async function periodSegments(
  f: DashFetch,
  mpd: Mpd,
  t: ReturnType<typeof selectionTracks>[number],
  nowMs: number,
): Promise<PeriodSegments> {
  const found = representationSegments(mpd, t.period, t.rep, { nowMs });
  if (found.kind === 'segments') return found;
  if (t.set.kind === 'text' && isTextFile(t.rep)) {
    // WebVTT and TTML files are text, not ISO BMFF: there is no sidx to read their byte ranges from.
    throw new GabeError('NOT_A_PLAYLIST', `a ${t.rep.mimeType} representation addressed by SegmentBase`);
  }
  const { references, sidxAt } = await readIndex(f, found.url, found.indexRange);
  const init = found.init ?? { url: found.url, range: { offset: 0, length: sidxAt } };
  let start = 0;
  const segments: DashSegment[] = references.map((r, i) => {
    const s = {
      url: found.url,
      range: { offset: r.offset, length: r.length },
      start,
      duration: r.duration,
      number: i,
    };
    start += r.duration;
    return s;
  });
  return { init, segments };
}

async function getRange(f: DashFetch, url: string, range: ByteRange): Promise<Buffer> {
  const { data } = await withRetry(
    () =>
      f.http.getBuffer(url, {
        signal: f.signal,
        range: { start: range.offset, end: range.offset + range.length - 1 },
        // An origin that ignores Range answers with the whole file: taken when small, refused when not.
        maxBytes: Math.max(range.offset + range.length, IGNORED_RANGE_BYTES),
      }),
    f.policy,
    { signal: f.signal, onRetry: f.onRetry },
  );
  return data.length > range.length ? data.subarray(range.offset, range.offset + range.length) : data;
}

/** The media subsegments a SegmentBase file's sidx lists (nested ones followed), and where it lies. */
async function readIndex(
  f: DashFetch,
  url: string,
  indexRange: ByteRange | null,
): Promise<{ references: SidxReference[]; sidxAt: number }> {
  let range = indexRange;
  // Without indexRange the sidx is among the first top-level boxes: walk them, a head at a time (a
  // large moov can push it past the first read).
  for (let at = 0, reads = 0; !range; reads++) {
    const found = findSidx(await getRange(f, url, { offset: at, length: HEAD_BYTES }), at);
    if (found.kind === 'found') range = { offset: found.offset, length: found.size };
    else if (found.kind === 'beyond' && found.offset > at && reads < MAX_HEAD_READS) at = found.offset;
    else throw new GabeError('NOT_A_PLAYLIST', 'the SegmentBase file has no sidx before its media');
  }
  if (range.length > MAX_SIDX_BYTES) throw new GabeError('PLAYLIST_TOO_LARGE', 'the sidx is too large');
  const references = await expand(f, url, range, 0);
  return { references, sidxAt: range.offset };
}

/** A box at `offset` whose size is not known yet (a nested sidx's reference also covers its media). */
async function readBox(f: DashFetch, url: string, offset: number, limit: number): Promise<Buffer> {
  const head = await getRange(f, url, { offset, length: Math.min(limit, HEAD_BYTES) });
  const size = head.length >= 8 ? head.readUInt32BE(0) : 0;
  if (size < 8 || size > MAX_SIDX_BYTES) throw new GabeError('NOT_A_PLAYLIST', 'the sidx box is unreadable');
  return size <= head.length ? head.subarray(0, size) : getRange(f, url, { offset, length: size });
}

async function expand(f: DashFetch, url: string, range: ByteRange, depth: number): Promise<SidxReference[]> {
  const sidx = parseSidx(await readBox(f, url, range.offset, range.length), range.offset);
  const out: SidxReference[] = [];
  for (const r of sidx.references) {
    if (r.referenceType === 0) out.push(r);
    else if (depth < MAX_SIDX_DEPTH)
      out.push(...(await expand(f, url, { offset: r.offset, length: r.length }, depth + 1)));
    else throw new GabeError('NOT_A_PLAYLIST', 'the sidx nests deeper than 4 levels');
  }
  return out;
}
