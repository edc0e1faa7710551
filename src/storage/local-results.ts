/**
 * Finished files that stay in output_path on this host: the embedded default ResultStore.
 */
import { constants as fsConstants } from 'node:fs';
import { access, rm, stat } from 'node:fs/promises';
import type { Job, JobResult } from '../jobs/types.js';
import type { Logger } from '../service/log.js';
import { isInside } from './paths.js';
import type { ResultCheck, ResultStore } from './results.js';

/** The local files a result names: the output, its .vtt sidecars and its poster frame. */
export function resultFiles(result: JobResult | null | undefined): string[] {
  if (!result) return [];
  const sidecars = (result.subtitles ?? []).map((s) => s.path);
  return [result.output_path, ...sidecars, result.thumbnail_path ?? ''].filter(Boolean);
}

/**
 * Deletes a result's output file and the sidecars (.vtt, the poster .jpg) written beside it, but only files
 * that lie inside output_path: a tampered row cannot aim elsewhere (s3:// paths are never inside it).
 */
export async function removeLocalOutput(result: JobResult | null, outputPath: string): Promise<void> {
  for (const file of resultFiles(result)) {
    if (isInside(outputPath, file)) await rm(file, { force: true });
  }
}

export class LocalResults implements ResultStore {
  readonly kind = 'local' as const;

  constructor(private readonly outputPath: string) {}

  /** The file is already where it belongs: publishFile (storage/paths.ts) put it into output_path. */
  async publish(_jobId: string, result: JobResult, _signal?: AbortSignal, _log?: Logger): Promise<JobResult> {
    return result;
  }

  remove(job: Job): Promise<void> {
    return removeLocalOutput(job.result, this.outputPath);
  }

  async check(): Promise<ResultCheck> {
    const base = { kind: 'local' as const, location: this.outputPath };
    try {
      if (!(await stat(this.outputPath)).isDirectory()) {
        return { ...base, ok: false, error: `${this.outputPath} is not a folder` };
      }
      await access(this.outputPath, fsConstants.W_OK);
      return { ...base, ok: true };
    } catch (err) {
      return { ...base, ok: false, error: (err as Error).message };
    }
  }

  async close(): Promise<void> {}
}
