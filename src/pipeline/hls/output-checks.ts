/** What a download turns into: the merge's inputs, the checks on its result, the files beside it. */
import { copyFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobResult } from '../../jobs/types.js';
import { concatList, type TrackInput } from '../../media/ffmpeg/merge-args.js';
import { formatResolution } from '../../playlist/selection.js';
import { GabeError } from '../../service/errors.js';
import type { SubtitleFile } from './subtitle-tracks.js';
import type { TrackResult } from './track-download.js';

/**
 * The playlist's EXTINF durations against the file's. They are the playlist's claim, often rounded
 * and sometimes wrong (every EXTINF saying 6 s of 20 s segments), while what Gabe knows for certain
 * is checked elsewhere: every segment fetched whole (its Content-Length, no error) and muxed, the
 * sample timestamps consistent. So a large difference is a note for the job's result and log, not a
 * failure: ffmpeg makes the same file of the same playlist. Tolerance: encoders pad the last GOP and
 * audio priming adds a frame or two. With unreadable EXTINFs the playlist's sum is only a lower
 * bound, so only a file shorter than it is noted.
 */
export function durationWarning(
  actual: number | null,
  listed: number,
  lowerBoundOnly: boolean,
): string | null {
  if (actual === null || listed <= 0) return null;
  const tolerance = Math.max(1.5, listed * 0.02);
  const tooShort = actual < listed - tolerance;
  const tooLong = !lowerBoundOnly && actual > listed + tolerance;
  if (!tooShort && !tooLong) return null;
  return `the file holds ${actual.toFixed(2)} s of media where the playlist's EXTINF durations add up to ${listed.toFixed(2)} s`;
}

/**
 * The merged file must hold a duration and the streams its tracks had: a file without them is a
 * broken merge, whatever the tools said.
 */
export function checkStreams(
  out: { format: { duration?: string }; streams: { codec_type: string }[] },
  expect: { video: boolean; audio: boolean },
): void {
  const duration = Number(out.format.duration);
  if (!(duration > 0)) throw new GabeError('INTEGRITY', 'the merged file holds no media (its duration is 0)');
  for (const kind of ['video', 'audio'] as const) {
    if (expect[kind] && !out.streams.some((s) => s.codec_type === kind)) {
      throw new GabeError('INTEGRITY', `the merged file has no ${kind} stream, though the download had one`);
    }
  }
}

/** "WxH" of the file's video, or the variant's RESOLUTION when the file's stream does not say. */
export function resolutionOf(
  out: { streams: { codec_type: string; width?: number; height?: number }[] },
  variant: { resolution: { width: number; height: number } | null } | null,
): string | null {
  const v = out.streams.find((s) => s.codec_type === 'video' && s.width && s.height);
  if (v) return `${v.width}x${v.height}`;
  return variant?.resolution ? formatResolution(variant) : null;
}

/** Sidecar .vtt files beside the output: `<name>.<language>.vtt`, never over an existing file. */
export async function publishSidecars(
  output: string,
  subtitles: readonly SubtitleFile[],
): Promise<NonNullable<JobResult['subtitles']>> {
  const base = output.replace(/\.[^./]+$/, '');
  const used = new Set<string>();
  const out: NonNullable<JobResult['subtitles']> = [];
  for (const [i, s] of subtitles.entries()) {
    const tag = (s.language ?? `track${i + 1}`).replace(/[^A-Za-z0-9-]/g, '') || `track${i + 1}`;
    let name = `${base}.${tag}.vtt`;
    for (let n = 2; used.has(name); n++) name = `${base}.${tag}-${n}.vtt`;
    used.add(name);
    await copyFile(s.sidecarFile, name);
    out.push({ language: s.language, name: s.name, path: name, cues: s.cues });
  }
  return out;
}

/**
 * A track file as ffmpeg input: the file itself, or an ffconcat list of its discontinuity runs. Every
 * track takes the main track's run lengths, so that all of them start each run together; a resumed
 * recording knows only its latest runs, and then ffmpeg measures each run itself.
 */
export async function trackInput(
  track: { file: string; label: string; result: TrackResult; runLengths: readonly number[] },
  mainRunLengths: readonly number[],
  dir: string,
): Promise<TrackInput> {
  const { file, result } = track;
  if (result.runStarts.length <= 1) return { file };
  const n = result.runStarts.length;
  const lengths =
    mainRunLengths.length === n ? mainRunLengths : track.runLengths.length === n ? track.runLengths : null;
  const runs = result.runStarts.map((start, i) => ({
    start,
    end: result.runStarts[i + 1] ?? result.bytes,
    seconds: lengths?.[i] ?? null,
  }));
  const list = path.join(dir, `${track.label}.ffconcat`);
  await rm(list, { force: true });
  await writeFile(list, concatList(file, runs));
  return { concat: list };
}
