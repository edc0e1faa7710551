import type { Job, JobProgress } from '../jobs/types.js';
import { redactCredentials } from '../net/redact.js';
import type { JobResponse } from './schemas.js';

/**
 * The spec's job response (snake_case, `result.file_size_mb`, progress and segment counts) plus bytes,
 * speed and ETA. `live` overlays a running job's in-memory progress, fresher than the stored copy.
 * Every answer that shows a job (GET /job, /jobs, SSE, webhooks) is made here, so this is where the
 * URL's `user:pass@` is masked (net/redact.ts); the stored job keeps it.
 */
export function presentJob(job: Job, live: JobProgress | null = null): JobResponse {
  const p = live ?? job;
  return {
    job_id: job.id,
    type: job.type,
    status: job.status,
    created_at: job.created_at,
    started_at: job.started_at,
    completed_at: job.completed_at,
    result: job.result && { ...job.result, original_url: redactCredentials(job.result.original_url) },
    error: job.error && redactCredentials(job.error),
    error_code: job.error_code,
    progress: p.progress,
    total_segments: p.total_segments,
    downloaded_segments: p.downloaded_segments,
    downloaded_bytes: p.downloaded_bytes,
    total_bytes: p.total_bytes,
    speed_bps: p.speed_bps,
    eta_seconds: p.eta_seconds,
    recorded_seconds: p.recorded_seconds,
    original_url: redactCredentials(job.request.url),
    video_name: job.result?.video_name ?? job.video_name,
    resolution: job.result?.resolution ?? job.request.resolution ?? null,
  };
}
