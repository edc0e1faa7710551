/**
 * WebVTT subtitle renditions of the chosen variant: every segment fetched (they are small: a few
 * hundred bytes each), stitched into one WebVTT document on the output's timeline (playlist/webvtt-stitcher.ts), and
 * written twice: one copy for ffmpeg to mux as mov_text, one to deliver beside the MP4.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { withRetry } from '../../net/retry.js';
import { type SubtitleSegment, stitchWebVtt } from '../../playlist/webvtt-stitcher.js';
import { formatWebVtt } from '../../playlist/webvtt-writer.js';
import { isGabeError } from '../../service/errors.js';
import { segmentSpans } from './clip-window.js';
import type { PlaylistSource, SubtitleTrack } from './renditions.js';
import { cutCues, firstKeptTime, subtitleSegmentsFor, type TimelineCut } from './subtitle-cut.js';
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
 * The track's segments as text, each at its start on the playlist's timeline (GAP segments take their
 * time, unfetched); with a cut, only those holding cues for the time kept.
 */
async function fetchTexts(
  src: PlaylistSource,
  track: SubtitleTrack,
  cut: TimelineCut | null,
): Promise<SubtitleSegment[]> {
  const { http, ctx, policy } = src;
  const spans = segmentSpans(track.media.segments);
  const indices = cut ? subtitleSegmentsFor(spans, cut) : spans.map((_, i) => i);
  const wanted = indices.filter((i) => !track.media.segments[i]!.gap);
  const out: SubtitleSegment[] = new Array(wanted.length);
  let next = 0;
  const worker = async () => {
    while (next < wanted.length) {
      const k = next++;
      const i = wanted[k]!;
      const url = urlOf(track.media.segments[i]!, track.media.baseUrl);
      const { data } = await withRetry(
        () => http.getBuffer(url, { signal: ctx.signal, maxBytes: MAX_SUBTITLE_SEGMENT_BYTES }),
        policy,
        { signal: ctx.signal },
      );
      const { start, end } = spans[i]!;
      out[k] = { text: data.toString('utf8'), start, duration: end - start };
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, wanted.length) }, worker));
  return out;
}

/**
 * Fetches and stitches each subtitle track. `originPts` is the 90 kHz PTS of the output's time 0 (the
 * earliest stream of the main track's first segment), or null when it could not be read. `cut`: the
 * output is a clip or lacks skipped segments, and its cues are cut the same way (subtitle-cut.ts). A
 * track that fails is skipped with a warning: subtitles never cost the video.
 */
export async function prepareSubtitles(
  src: PlaylistSource,
  tracks: readonly SubtitleTrack[],
  originPts: Promise<number | null>,
  dir: string,
  cut: TimelineCut | null = null,
): Promise<SubtitleFile[]> {
  const texts = await Promise.all(
    tracks.map((t) =>
      fetchTexts(src, t, cut).catch((err: unknown) => {
        if (isGabeError(err, 'CANCELLED')) throw err;
        src.ctx.log.warn(
          { language: t.rendition.language, err: (err as Error).message },
          'subtitle rendition skipped: its segments could not be fetched',
        );
        return null;
      }),
    ),
  );
  const origin = await originPts;
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
