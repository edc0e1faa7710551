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

/**
 * A file a downloader writes strictly in order, announced (DownloadContext.onOutputFile) so that it can
 * be uploaded while it grows.
 */
export interface OutputFile {
  /** Where it is written (in the job's temp folder). */
  path: string;
  /** The name it is published under in output_path unless that one is taken: `<video_name>.mp4`. */
  publishAs: string;
  /** Bytes at its start that are rewritten when it is finished; past them it only grows, in order. */
  headerBytes: number;
}

/** A file's upload begun while the file is written (ResultStore.begin); publish() finishes or drops it. */
export interface EarlyUpload {
  /**
   * Completes the upload from the finished file, now at `finalPath`; null when what went up early
   * cannot make its object (the upload is then aborted and the caller uploads the file whole).
   */
  finish(finalPath: string): Promise<EarlyUploaded | null>;
  /** Drops it and whatever went up; at any time, more than once. */
  abort(): Promise<void>;
}

export interface EarlyUploaded {
  /** Where the file now is (`s3://bucket/key`) and its key. */
  url: string;
  key: string;
  bytes: number;
  /** Parts sent while the file was written and kept, and those that had changed and went up again. */
  earlyParts: number;
  resentParts: number;
  /** For the log: what publishing still had to do, the last parts and the completion, in seconds. */
  timings: Record<string, number>;
}

export interface ResultStore {
  readonly kind: 'local' | 's3';
  /**
   * Called once a job's file (and .vtt sidecars) are complete in output_path: local returns the result
   * unchanged; S3 uploads each file (streamed multipart, retried with back-off), removes the local
   * copies and returns the result with `s3://bucket/key` paths. An upload that keeps failing throws
   * GABE_ERR_UPLOAD and leaves the local files where they are. With `early` (from begin()) the main
   * file's upload is finished from what already went up, or, when that fails, done whole as above.
   */
  publish(
    jobId: string,
    result: JobResult,
    signal: AbortSignal,
    log: Logger,
    early?: EarlyUpload,
  ): Promise<JobResult>;
  /**
   * A store that can take the job's main file while it is written (S3) begins its upload here, when
   * the writer announces the file (DownloadContext.onOutputFile); publish() then receives the handle.
   * Never throws: a store that cannot begin returns null and publishes the plain way.
   */
  begin?(jobId: string, file: OutputFile, signal: AbortSignal, log: Logger): EarlyUpload | null;
  /** Deletes a job's files wherever they are: local files inside output_path, S3 objects under the prefix. */
  remove(job: Job): Promise<void>;
  /** For /health: output_path exists, or the bucket answers HeadBucket. */
  check(): Promise<ResultCheck>;
  close(): Promise<void>;
}
