import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import type { Downloader } from '../pipeline/context.js';
import { ProgressTracker } from '../pipeline/progress.js';
import type { Config } from '../service/config.js';
import { GabeError, toGabeError } from '../service/errors.js';
import type { Logger } from '../service/log.js';
import { jobTempDir, removeDir } from '../storage/paths.js';
import type { JobStore, NewJob } from './store.js';
import type { Job, JobProgress, JobType } from './types.js';

/** Progress events (SSE, metrics) at most this often per job… */
const PROGRESS_EMIT_MS = 250;
/** …and the stored copy (GET /job overlays live progress, so the database may lag). */
const PROGRESS_WRITE_MS = 1000;

type StopReason = 'cancel' | 'shutdown';

interface Running {
  controller: AbortController;
  tracker: ProgressTracker;
  done: Promise<void>;
  /** Set by a live recording: DELETE aborts this (stop and keep) rather than the job. */
  stop: AbortController | null;
}

export interface SchedulerDeps {
  store: JobStore;
  config: Config;
  ffmpeg: FfmpegTools;
  log: Logger;
  downloaders: Partial<Record<JobType, Downloader>>;
}

/** What the scheduler tells its listeners (SSE, metrics, webhooks), checked at compile time. */
export type SchedulerEvents = {
  /** A stored job after any state change. */
  job: [job: Job];
  /** A running job's progress, at most every PROGRESS_EMIT_MS. */
  progress: [id: string, progress: JobProgress];
  /** A running job retries a request. */
  retry: [id: string];
};

/**
 * The worker loop (pg-boss's shape): claim the oldest PENDING job while fewer than
 * max_concurrent_downloads run, give each an AbortController, and record every outcome. Events:
 * `job` (a stored job after any state change), `progress` (job id + progress) and `retry` (job id, a
 * retried request), for SSE, metrics and webhooks (typed by SchedulerEvents).
 */
export class Scheduler extends EventEmitter<SchedulerEvents> {
  private readonly running = new Map<string, Running>();
  private accepting = false;

  constructor(private readonly deps: SchedulerDeps) {
    super();
  }

  /**
   * Re-queues jobs a previous process left PROCESSING (failing those that have used up max_attempts),
   * then starts work.
   */
  start(): { requeued: number; pending: number; failed: number } {
    const failed = this.deps.store.failExhausted(this.deps.config.max_attempts);
    for (const job of failed) {
      this.deps.log.warn(
        { job_id: job.id, attempts: job.attempts, code: job.error_code },
        'job failed: the service died while it ran, and it has started max_attempts times',
      );
      this.emit('job', job);
    }
    const requeued = this.deps.store.requeueInterrupted();
    this.accepting = true;
    this.pump();
    return { requeued, pending: this.deps.store.countByStatus().PENDING, failed: failed.length };
  }

  get isAccepting(): boolean {
    return this.accepting;
  }

  get runningCount(): number {
    return this.running.size;
  }

  submit(job: NewJob): Job {
    if (!this.accepting) {
      throw new GabeError('SHUTTING_DOWN', 'the service is shutting down; try again shortly', {
        retryAfter: 10,
      });
    }
    if (!this.deps.downloaders[job.type]) {
      throw new GabeError('NOT_IMPLEMENTED', `downloads of type ${job.type} are not available yet`);
    }
    const admitted = this.deps.store.admit(job, {
      maxQueueSize: this.deps.config.max_queue_size,
      maxJobsPerIp: this.deps.config.max_jobs_per_ip,
      maxJobsPerOwner: this.deps.config.max_jobs_per_key,
    });
    this.emit('job', admitted);
    queueMicrotask(() => this.pump());
    return admitted;
  }

  /** Sum of running jobs' current speeds, bytes per second. */
  totalSpeed(): number {
    let sum = 0;
    for (const r of this.running.values()) sum += r.tracker.speed();
    return sum;
  }

  /** The live progress of a running job (fresher than the throttled copy in the store). */
  liveProgress(id: string): JobProgress | null {
    return this.running.get(id)?.tracker.snapshot() ?? null;
  }

  /**
   * Cancels a PENDING or PROCESSING job and resolves with it once it is CANCELLED and its transfer and
   * temp files are gone; a live recording is stopped instead, and resolves once it has COMPLETED with
   * what was recorded. Returns null for an unknown job, the job unchanged for a finished one.
   */
  async cancel(id: string): Promise<Job | null> {
    const run = this.running.get(id);
    if (run) {
      if (run.stop) run.stop.abort();
      else run.controller.abort('cancel' satisfies StopReason);
      await run.done;
      return this.deps.store.get(id);
    }
    const job = this.deps.store.get(id);
    if (job?.status === 'PENDING') {
      const cancelled = this.deps.store.transition(id, 'CANCELLED', {
        error: 'cancelled by the client',
        error_code: 'GABE_ERR_CANCELLED',
      });
      if (cancelled) {
        this.emit('job', cancelled);
        // A job re-queued after a restart may have partial files from its earlier attempt.
        await removeDir(jobTempDir(this.deps.config.temp_path, id));
        return cancelled;
      }
    }
    return this.deps.store.get(id);
  }

  /**
   * Stops taking jobs and interrupts the running ones, which go back to PENDING with their partial
   * files kept, so the next start resumes them.
   */
  async stop(): Promise<void> {
    this.accepting = false;
    const all = [...this.running.values()];
    for (const r of all) r.controller.abort('shutdown' satisfies StopReason);
    await Promise.allSettled(all.map((r) => r.done));
  }

  private pump(): void {
    while (this.accepting && this.running.size < this.deps.config.max_concurrent_downloads) {
      const job = this.deps.store.claimNext();
      if (!job) return;
      this.emit('job', job);
      this.launch(job);
    }
  }

  private launch(job: Job): void {
    const controller = new AbortController();
    const tracker = new ProgressTracker();
    const entry: Running = { controller, tracker, done: Promise.resolve(), stop: null };
    this.running.set(job.id, entry);
    entry.done = this.execute(job, entry).finally(() => {
      this.running.delete(job.id);
      this.pump();
    });
  }

  private async execute(job: Job, entry: Running): Promise<void> {
    const { controller, tracker } = entry;
    const { store, config } = this.deps;
    const log = this.deps.log.child({ job_id: job.id });
    const tempDir = jobTempDir(config.temp_path, job.id);
    let lastWrite = 0;
    let lastEmit = 0;
    const reportProgress = () => {
      const now = Date.now();
      if (now - lastEmit < PROGRESS_EMIT_MS) return;
      lastEmit = now;
      const snapshot = tracker.snapshot();
      this.emit('progress', job.id, snapshot);
      if (now - lastWrite < PROGRESS_WRITE_MS) return;
      lastWrite = now;
      store.updateProgress(job.id, snapshot);
    };
    log.info({ type: job.type, url: job.request.url, attempt: job.attempts }, 'job started');
    try {
      const downloader = this.deps.downloaders[job.type];
      if (!downloader) throw new GabeError('NOT_IMPLEMENTED', `no downloader for ${job.type}`);
      await mkdir(tempDir, { recursive: true });
      const result = await downloader.run({
        job: { id: job.id, type: job.type, request: job.request, video_name: job.video_name },
        config,
        ffmpeg: this.deps.ffmpeg,
        log,
        signal: controller.signal,
        tempDir,
        progress: tracker,
        reportProgress,
        onRetry: () => this.emit('retry', job.id),
        markLive: () => {
          entry.stop ??= new AbortController();
          return entry.stop.signal;
        },
      });
      if (controller.signal.aborted) throw new GabeError('CANCELLED', 'the job was cancelled');
      store.updateProgress(job.id, tracker.snapshot());
      const done = store.transition(job.id, 'COMPLETED', { result });
      if (done) this.emit('job', done);
      log.info({ output: result.output_path, size_mb: result.file_size_mb }, 'job completed');
      await removeDir(tempDir);
    } catch (raw) {
      const reason = controller.signal.aborted ? (controller.signal.reason as StopReason) : null;
      store.updateProgress(job.id, tracker.snapshot());
      if (reason === 'shutdown') {
        const requeued = store.transition(job.id, 'PENDING');
        if (requeued) this.emit('job', requeued);
        log.info('job interrupted by shutdown; it resumes on the next start');
        return;
      }
      await removeDir(tempDir).catch((e: unknown) => log.warn({ err: e }, 'could not remove temp files'));
      if (reason === 'cancel') {
        const cancelled = store.transition(job.id, 'CANCELLED', {
          error: 'cancelled by the client',
          error_code: 'GABE_ERR_CANCELLED',
        });
        if (cancelled) this.emit('job', cancelled);
        log.info('job cancelled');
        return;
      }
      const err = toGabeError(raw);
      const failed = store.transition(job.id, 'FAILED', { error: err.message, error_code: err.code });
      if (failed) this.emit('job', failed);
      log.error(
        { code: err.code, err: err.message, cause: err.kind === 'INTERNAL' ? raw : undefined },
        'job failed',
      );
    }
  }
}
