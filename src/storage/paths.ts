import { constants as fsConstants } from 'node:fs';
import { copyFile, link, mkdir, rename, rm, statfs, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GabeError } from '../service/errors.js';

/** The job's private scratch folder. Named by job id only, so no request text reaches the path. */
export function jobTempDir(tempRoot: string, jobId: string): string {
  if (!/^[0-9a-f-]{36}$/i.test(jobId)) throw new GabeError('INTERNAL', `unexpected job id ${jobId}`);
  return path.join(tempRoot, jobId);
}

/**
 * Replaces `file`'s content atomically: written to `<file>.tmp`, then renamed over it (rename(2)
 * swaps the name in one step), so a crash or a concurrent reader never meets half of it.
 */
export async function replaceFile(file: string, data: string): Promise<void> {
  await writeFile(`${file}.tmp`, data);
  await rename(`${file}.tmp`, file);
}

export function isInside(dir: string, file: string): boolean {
  const rel = path.relative(path.resolve(dir), path.resolve(file));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Moves a finished temp file to `<outputDir>/<baseName><ext>` without ever replacing an existing file:
 * "name.mp4", then "name (1).mp4", "name (2).mp4" … link(2) fails with EEXIST instead of overwriting,
 * which rename(2) would not, and it makes the whole file appear at once. Across file systems (temp on
 * another disk) link gives EXDEV and we copy with COPYFILE_EXCL, which is as safe but not atomic.
 */
export async function publishFile(
  tempFile: string,
  outputDir: string,
  baseName: string,
  ext: string,
): Promise<string> {
  await mkdir(outputDir, { recursive: true });
  for (let n = 0; n < 10_000; n++) {
    const candidate = path.join(outputDir, `${baseName}${n === 0 ? '' : ` (${n})`}${ext}`);
    if (!isInside(outputDir, candidate)) {
      throw new GabeError('STORAGE', `refusing to write outside output_path: ${candidate}`);
    }
    try {
      await link(tempFile, candidate);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP') throw err;
      try {
        await copyFile(tempFile, candidate, fsConstants.COPYFILE_EXCL);
      } catch (copyErr) {
        if ((copyErr as NodeJS.ErrnoException).code === 'EEXIST') continue;
        await rm(candidate, { force: true });
        throw copyErr;
      }
    }
    await unlink(tempFile);
    return candidate;
  }
  throw new GabeError('STORAGE', `too many files named ${baseName}${ext} in ${outputDir}`);
}

/** Free bytes for an unprivileged writer on the file system holding `dir` (null when unknown). */
export async function freeBytes(dir: string): Promise<number | null> {
  try {
    await mkdir(dir, { recursive: true });
    const s = await statfs(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

/** Free space is re-checked after this many bytes, so a disk that other writers fill is noticed early. */
export const SPACE_CHECK_BYTES = 32 * 1024 * 1024;

/**
 * Fails early when a download of known size cannot fit. The margin covers the remux copy that ffmpeg
 * writes beside the download before the temp file is removed.
 */
export async function ensureSpace(dir: string, neededBytes: number): Promise<void> {
  const free = await freeBytes(dir);
  if (free !== null && neededBytes > 0 && free < neededBytes) {
    throw new GabeError(
      'DISK_FULL',
      `not enough free space in ${dir}: ${(free / 1e6).toFixed(1)} MB free, ${(neededBytes / 1e6).toFixed(1)} MB needed`,
    );
  }
}
