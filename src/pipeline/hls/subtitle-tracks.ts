/**
 * WebVTT subtitle renditions of the chosen variant: every segment fetched (they are small: a few
 * hundred bytes each), stitched into one WebVTT document on the output's timeline (playlist/webvtt-stitcher.ts), and
 * written twice: one copy for ffmpeg to mux as mov_text, one to deliver beside the MP4.
 */
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { looksFmp4 } from '../../media/fmp4-reader.js';
import { type TextTrackInit, textTrackInit } from '../../media/fmp4-text.js';
import { firstFmp4Pts, firstTsPts } from '../../media/pts.js';
import { withRetry } from '../../net/retry.js';
import type { ByteRange } from '../../playlist/model.js';
import { type SubtitleSegment, stitchWebVtt } from '../../playlist/webvtt-stitcher.js';
import { formatWebVtt } from '../../playlist/webvtt-writer.js';
import { GabeError, isGabeError } from '../../service/errors.js';
import { segmentSpans } from './clip-window.js';
import type { PlaylistSource, SubtitleTrack } from './renditions.js';
import { cutCues, firstKeptTime, subtitleSegmentsFor, type TimelineCut } from './subtitle-cut.js';
import { asWebVtt } from './subtitle-formats.js';
import { urlOf } from './track-plan.js';

/** A stitched subtitle track on disk, ready for the merge. */
export interface SubtitleFile {
  language: string | null;
  name: string;
  /** For ffmpeg: cues only (ffmpeg 5.1 reads no cue from a file with STYLE or REGION blocks). */
  muxFile: string;
  /** The sidecar: STYLE and REGION blocks kept, for players. */
  sidecarFile: string;
  cues: number;
}

/** Subtitle segments fetched at once; tiny files, so a few connections suffice. */
const CONCURRENCY = 8;
const MAX_SUBTITLE_SEGMENT_BYTES = 1024 * 1024;
/**
 * Bytes a job's subtitle renditions may take in all: a film's WebVTT is some 100 KB a language, but a
 * playlist can list 100,000 segments of up to MAX_SUBTITLE_SEGMENT_BYTES, and a master any number of
 * renditions, all held until stitched.
 */
const MAX_SUBTITLE_BYTES = 64 * 1024 * 1024;

/**
 * Bytes at a run's start read for its first timestamp (TS: the first PES of each stream): a first
 * read that is almost always enough, then as much as the origin watcher reads at most.
 */
const RUN_HEAD_READS = [256 * 1024, 4 * 1024 * 1024];

/** The video clock of one discontinuity run: PTS `pts` is at `time` on the playlist's timeline. */
export interface RunAnchor {
  pts: number;
  time: number;
}

/**
 * The clock of each discontinuity run of the main track, from its track file: the first PTS at the
 * run's start (`runStarts`, byte offsets; the file is `bytes` long), at the playlist time of the run's
 * first segment (`times`, runTimes). null for a run whose first timestamp cannot be read (an fMP4 run
 * without its own init section): its segments take the clock of the run before.
 */
export async function runAnchors(
  file: string,
  track: { runStarts: readonly number[]; bytes: number },
  times: readonly number[],
  fmp4: boolean,
): Promise<(RunAnchor | null)[]> {
  const fh = await open(file, 'r');
  try {
    const anchors: (RunAnchor | null)[] = [];
    for (const [k, at] of track.runStarts.entries()) {
      const runEnd = track.runStarts[k + 1] ?? track.bytes;
      let pts: number | null = null;
      for (const size of RUN_HEAD_READS) {
        const head = Buffer.alloc(Math.max(0, Math.min(runEnd, at + size) - at));
        const { bytesRead } = await fh.read(head, 0, head.length, at);
        const bytes = head.subarray(0, bytesRead);
        pts = fmp4 ? firstFmp4Pts(bytes) : firstTsPts(bytes);
        if (pts !== null || at + size >= runEnd) break;
      }
      const time = times[k] ?? Number.NaN;
      anchors.push(pts !== null && Number.isFinite(time) ? { pts, time } : null);
    }
    return anchors;
  } finally {
    await fh.close();
  }
}

/** An fMP4 text track's init segment, or null for anything else (text, another track, damage). */
function readTextInit(data: Buffer): TextTrackInit | null {
  if (!looksFmp4(data)) return null;
  try {
    return textTrackInit(data);
  } catch {
    return null;
  }
}

/** The anchor of the run a segment's middle falls in: the last one starting at or before it. */
function anchorAt(anchors: readonly (RunAnchor | null)[], t: number): RunAnchor | undefined {
  let found: RunAnchor | undefined;
  for (const a of anchors) if (a && a.time <= t + 1e-3) found = a;
  return found;
}

/**
 * The track's segments as text, each at its start on the playlist's timeline (GAP segments take their
 * time, unfetched) with the clock of the main track's run it falls in; with a cut, only those holding
 * cues for the time kept.
 */
async function fetchTexts(
  src: PlaylistSource,
  track: SubtitleTrack,
  o: SubtitleTiming,
  budget: { bytes: number },
): Promise<SubtitleSegment[]> {
  const { http, ctx, policy } = src;
  const { segments } = track.media;
  const spans = segmentSpans(segments);
  const breaks = segments.map((s) => s.discontinuity);
  const listed = o.cut
    ? subtitleSegmentsFor(spans, o.cut, breaks)
    : spans.map((_, index) => ({ index, otherClock: false }));
  const wanted = listed.filter((w) => !segments[w.index]!.gap);
  const get = async (item: { uri: string; resolvedUri?: string; byterange: ByteRange | null }) => {
    const url = urlOf(item, track.media.baseUrl);
    const r = item.byterange;
    const range = r ? { start: r.offset, end: r.offset + r.length - 1 } : undefined;
    const opts = { signal: ctx.signal, maxBytes: MAX_SUBTITLE_SEGMENT_BYTES, range };
    return (await withRetry(() => http.getBuffer(url, opts), policy, { signal: ctx.signal })).data;
  };
  // An fMP4 text track (stpp, wvtt) needs its init segment for the timescale and the track; an init
  // that is not one leaves the segments to be read as text.
  const map = wanted.map((w) => segments[w.index]!.map).find((m) => m !== null) ?? null;
  const init = map ? readTextInit(await get(map)) : null;
  const out: SubtitleSegment[] = new Array(wanted.length);
  let next = 0;
  const worker = async () => {
    try {
      while (next < wanted.length) {
        const k = next++;
        const { index, otherClock } = wanted[k]!;
        const data = await get(segments[index]!);
        budget.bytes -= data.length;
        if (budget.bytes < 0) {
          throw new GabeError('SEGMENT', `the subtitles are over ${MAX_SUBTITLE_BYTES} bytes in all`);
        }
        const { start, end } = spans[index]!;
        const anchor = o.anchors ? anchorAt(o.anchors, (start + end) / 2) : undefined;
        out[k] = { text: asWebVtt(data, init), start, duration: end - start, anchor, otherClock };
      }
    } catch (err) {
      // The other workers stop too: what they would fetch is of no use now.
      next = wanted.length;
      throw err;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, wanted.length) }, worker));
  return out;
}

/** How the subtitles are timed against the video. */
export interface SubtitleTiming {
  /**
   * The 90 kHz PTS of the output's time 0 (the earliest stream of the main track's first segment
   * downloaded), or null when it could not be read.
   */
  origin: Promise<number | null>;
  /** The output is a clip or lacks skipped segments: its cues are cut the same way (subtitle-cut.ts). */
  cut: TimelineCut | null;
  /**
   * Each discontinuity run's clock (runAnchors), when the main track has several: a run's clock
   * may restart or jump, so the first one's would misplace its cues.
   */
  anchors?: readonly (RunAnchor | null)[];
}

/**
 * Fetches and stitches each subtitle track into `dir`. A track that fails is skipped with a warning:
 * subtitles never cost the video.
 */
export async function prepareSubtitles(
  src: PlaylistSource,
  tracks: readonly SubtitleTrack[],
  dir: string,
  timing: SubtitleTiming,
): Promise<SubtitleFile[]> {
  const { cut } = timing;
  const budget = { bytes: MAX_SUBTITLE_BYTES };
  const texts = await Promise.all(
    tracks.map((t) =>
      fetchTexts(src, t, timing, budget).catch((err: unknown) => {
        if (isGabeError(err, 'CANCELLED')) throw err;
        src.ctx.log.warn(
          { language: t.rendition.language, err: (err as Error).message },
          'subtitle rendition skipped: its segments could not be fetched or read',
        );
        return null;
      }),
    ),
  );
  const origin = await timing.origin;
  const files: SubtitleFile[] = [];
  for (const [i, t] of tracks.entries()) {
    const segments = texts[i];
    if (!segments) continue;
    const stitched = stitchWebVtt(segments, {
      videoStartPts: origin,
      originTime: cut ? firstKeptTime(cut) : 0,
      keepBlocks: true,
    });
    const cues = cut ? cutCues(stitched.cues, cut) : stitched.cues;
    if (cues.length === 0) {
      src.ctx.log.warn({ language: t.rendition.language }, 'subtitle rendition skipped: it has no cues');
      continue;
    }
    const muxFile = path.join(dir, `subtitles-${i}.mux.vtt`);
    const sidecarFile = path.join(dir, `subtitles-${i}.vtt`);
    await writeFile(muxFile, formatWebVtt(cues));
    await writeFile(sidecarFile, formatWebVtt(cues, stitched.blocks));
    files.push({
      language: t.rendition.language,
      name: t.rendition.name,
      muxFile,
      sidecarFile,
      cues: cues.length,
    });
  }
  return files;
}
