/**
 * Where finished files live: output_path on this host (the embedded default), or an S3 bucket
 * (config storage.s3.bucket). The runner publishes each finished job through it; DELETE and the age
 * cleanup remove files through it; GET /job/{id}/file and /health ask it.
 */
import type { Job, JobResult } from '../jobs/types.js';
import type { Logger } from '../service/log.js';

export interface ResultCheck {
  ok: boolean;
  /** 'local' or 's3'. */
  kind: 'local' | 's3';
  /** output_path, or s3://bucket/prefix. */
  location: string;
  error?: string;
}

export interface ResultStore {
  readonly kind: 'local' | 's3';
  /**
   * Called once a job's file (and .vtt sidecars) are complete in output_path: local returns the result
   * unchanged; S3 uploads each file (streamed multipart, retried with back-off), removes the local
   * copies and returns the result with `s3://bucket/key` paths. An upload that keeps failing throws
   * GABE_ERR_UPLOAD and leaves the local files where they are.
   */
  publish(jobId: string, result: JobResult, signal: AbortSignal, log: Logger): Promise<JobResult>;
  /** Deletes a job's files wherever they are: local files inside output_path, S3 objects under the prefix. */
  remove(job: Job): Promise<void>;
  /** For /health: output_path exists, or the bucket answers HeadBucket. */
  check(): Promise<ResultCheck>;
  close(): Promise<void>;
}
