/**
 * WebVTT subtitle renditions of the chosen variant: every segment fetched (they are small: a few
 * hundred bytes each), stitched into one WebVTT document on the output's timeline (playlist/webvtt-stitcher.ts), and
 * written twice: one copy for ffmpeg to mux as mov_text, one to deliver beside the MP4.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { withRetry } from '../../net/retry.js';
import { type SubtitleSegment, stitchWebVtt } from '../../playlist/webvtt-stitcher.js';
import { isGabeError } from '../../service/errors.js';
import type { PlaylistSource, SubtitleTrack } from './renditions.js';
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

async function fetchTexts(src: PlaylistSource, track: SubtitleTrack): Promise<SubtitleSegment[]> {
  const { http, ctx, policy } = src;
  const segments = track.media.segments.filter((s) => !s.gap);
  const out: SubtitleSegment[] = new Array(segments.length);
  let start = 0;
  const starts = segments.map((s) => {
    const at = start;
    start += s.duration ?? 0;
    return at;
  });
  let next = 0;
  const worker = async () => {
    while (next < segments.length) {
      const i = next++;
      const s = segments[i]!;
      const url = urlOf(s, track.media.baseUrl);
      const { data } = await withRetry(
        () => http.getBuffer(url, { signal: ctx.signal, maxBytes: MAX_SUBTITLE_SEGMENT_BYTES }),
        policy,
        { signal: ctx.signal },
      );
      out[i] = { text: data.toString('utf8'), start: starts[i]!, duration: s.duration ?? 0 };
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, segments.length) }, worker));
  return out;
}

/**
 * Fetches and stitches each subtitle track. `originPts` is the 90 kHz PTS of the output's time 0 (the
 * earliest stream of the main track's first segment), or null when it could not be read. A track
 * that fails is skipped with a warning: subtitles never cost the video.
 */
export async function prepareSubtitles(
  src: PlaylistSource,
  tracks: readonly SubtitleTrack[],
  originPts: Promise<number | null>,
  dir: string,
): Promise<SubtitleFile[]> {
  const texts = await Promise.all(
    tracks.map((t) =>
      fetchTexts(src, t).catch((err: unknown) => {
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
    const forMux = stitchWebVtt(segments, { videoStartPts: origin });
    if (forMux.cues.length === 0) {
      src.ctx.log.warn({ language: t.rendition.language }, 'subtitle rendition skipped: it has no cues');
      continue;
    }
    const sidecar = stitchWebVtt(segments, { videoStartPts: origin, keepBlocks: true });
    const muxFile = path.join(dir, `subtitles-${i}.mux.vtt`);
    const sidecarFile = path.join(dir, `subtitles-${i}.vtt`);
    await writeFile(muxFile, forMux.vtt);
    await writeFile(sidecarFile, sidecar.vtt);
    files.push({
      language: t.rendition.language,
      name: t.rendition.name,
      muxFile,
      sidecarFile,
      cues: forMux.cues.length,
    });
  }
  return files;
}
