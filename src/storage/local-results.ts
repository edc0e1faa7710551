/** Finished files that stay where the job wrote them: output_path on this host (the embedded default). */
import { constants } from 'node:fs';
import { access, rm } from 'node:fs/promises';
import type { Job, JobResult } from '../jobs/types.js';
import { isInside } from './paths.js';
import type { ResultCheck, ResultStore } from './results.js';

/**
 * Deletes a job's output file and the subtitle sidecars (.vtt) written beside it, but only files that
 * lie inside output_path: a tampered record cannot aim elsewhere.
 */
export async function removeLocalOutput(job: Job, outputPath: string): Promise<void> {
  const files = [job.result?.output_path, ...(job.result?.subtitles ?? []).map((s) => s.path)];
  for (const file of files) {
    if (file && isInside(outputPath, file)) await rm(file, { force: true });
  }
}

export class LocalResults implements ResultStore {
  readonly kind = 'local' as const;

  constructor(private readonly outputPath: string) {}

  async publish(_jobId: string, result: JobResult): Promise<JobResult> {
    return result;
  }

  remove(job: Job): Promise<void> {
    return removeLocalOutput(job, this.outputPath);
  }

  async check(): Promise<ResultCheck> {
    try {
      await access(this.outputPath, constants.W_OK);
      return { ok: true, kind: 'local', location: this.outputPath };
    } catch (err) {
      return { ok: false, kind: 'local', location: this.outputPath, error: (err as Error).message };
    }
  }

  async close(): Promise<void> {}
}
