import type { JobRequest, JobResult, JobType } from '../jobs/types.js';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import type { RateLimiter } from '../net/rate-limiter.js';
import type { Config } from '../service/config.js';
import type { Logger } from '../service/log.js';
import type { OutputFile } from '../storage/results.js';
import type { ProgressTracker } from './progress.js';

/**
 * What a downloader reads of its job: the request, and the name its file is published under. The
 * scheduler builds it from the job's row; `gabe download` from its options, without a row.
 */
export interface JobSpec {
  id: string;
  type: JobType;
  request: JobRequest;
  video_name: string;
}

/** Everything a downloader may use for one job. It owns nothing here; the scheduler cleans up. */
export interface DownloadContext {
  job: JobSpec;
  config: Config;
  ffmpeg: FfmpegTools;
  log: Logger;
  signal: AbortSignal;
  /** The job's private scratch folder (exists, may hold a previous attempt's partial files). */
  tempDir: string;
  progress: ProgressTracker;
  /** Asks the scheduler to publish the tracker's state (throttled there, so call freely). */
  reportProgress(): void;
  /** The process's speed limit (config max_total_speed), which every job's limiter draws from. */
  serviceLimiter?: RateLimiter | null;
  /** Counts a retried request (metrics). */
  onRetry?: () => void;
  /**
   * A live recording calls this once it knows it is one: from then on DELETE means "stop and keep
   * what was recorded" (the returned signal aborts; the job then completes) instead of cancelling.
   */
  markLive?: () => AbortSignal;
  /**
   * Called by a writer that appends its output strictly in order (only the in-process MP4 remux), once
   * the file exists: the result store may begin uploading it (storage/progressive-upload.ts). The file
   * is still published as usual; this only lets the upload start early. Never throws.
   */
  onOutputFile?: (file: OutputFile) => void;
}

/** One implementation per job type: the scheduler picks by `job.type`. */
export interface Downloader {
  run(ctx: DownloadContext): Promise<JobResult>;
}
