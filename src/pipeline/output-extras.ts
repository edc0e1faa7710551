/**
 * What a job makes of its finished MP4 before publishing it, for both job types: the poster frame
 * (`thumbnail: true`) and the Matroska copy (`container: "mkv"`; `.mka` for audio_only). Both by
 * ffmpeg, stream copy only; the poster is taken from the MP4 before any remux.
 */
import { constants } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { matroskaArgs, posterArgs, posterTime } from '../media/ffmpeg/output-args.js';
import { runTool } from '../media/ffmpeg/run.js';
import { type FileTags, fileTags } from '../media/file-tags.js';
import { isGabeError } from '../service/errors.js';
import type { DownloadContext } from './context.js';

/** The job's title and source for its file; none with config `tag_files: false`. */
export function jobTags(ctx: Pick<DownloadContext, 'job' | 'config'>): FileTags {
  if (!ctx.config.tag_files) return { title: null, comment: null };
  return fileTags(ctx.job.video_name, ctx.job.request.url);
}

export interface OutputInput {
  /** The finished MP4 in the job's folder. */
  file: string;
  /** Its extension and container name when it stays as it is. */
  ext: string;
  container: string;
  audioOnly: boolean;
  duration: number | null;
  hasVideo: boolean;
}

export interface OutputFinal {
  file: string;
  ext: string;
  container: string;
  /** The poster frame in the job's folder, to publish beside the file (publishPoster). */
  poster: string | null;
  warnings: string[];
}

export async function finishOutput(ctx: DownloadContext, o: OutputInput): Promise<OutputFinal> {
  const { request } = ctx.job;
  const warnings: string[] = [];
  let poster: string | null = null;
  if (request.thumbnail) {
    if (o.audioOnly || !o.hasVideo) {
      warnings.push('no poster frame: the file has no video');
    } else {
      poster = path.join(ctx.tempDir, 'poster.jpg');
      const at = posterTime(o.duration);
      try {
        await runTool(ctx.ffmpeg.ffmpeg, posterArgs(o.file, poster, at), { signal: ctx.signal });
      } catch (err) {
        if (isGabeError(err, 'CANCELLED')) throw err;
        // A poster is an extra: the download itself succeeded, so the job does too, with a note.
        ctx.log.warn({ err: (err as Error).message }, 'poster frame failed');
        warnings.push(`no poster frame: ${(err as Error).message}`);
        poster = null;
      }
    }
  }
  if (request.container !== 'mkv')
    return { file: o.file, ext: o.ext, container: o.container, poster, warnings };
  const ext = o.audioOnly ? '.mka' : '.mkv';
  const out = path.join(ctx.tempDir, `output${ext}`);
  await runTool(ctx.ffmpeg.ffmpeg, matroskaArgs(o.file, out, jobTags(ctx)), {
    signal: ctx.signal,
  });
  await rm(o.file, { force: true });
  return { file: out, ext, container: ext.slice(1), poster, warnings };
}

/** The poster beside the published file, `<name>.jpg` (`<name>-2.jpg`… when taken); its path. */
export async function publishPoster(poster: string, outputPath: string): Promise<string> {
  const base = outputPath.replace(/\.[^./]+$/, '');
  for (let n = 1; ; n++) {
    const name = n === 1 ? `${base}.jpg` : `${base}-${n}.jpg`;
    try {
      await copyFile(poster, name, constants.COPYFILE_EXCL);
      return name;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 100) throw err;
    }
  }
}
