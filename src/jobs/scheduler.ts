import { EventEmitter } from 'node:events';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import type { Downloader } from '../pipeline/context.js';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';
import type { Logger } from '../service/log.js';
import { jobTempDir, removeDir } from '../storage/paths.js';
import type { ResultStore } from '../storage/results.js';
import { admissionLimits, type NewJob } from './job-store.js';
import type { JobEvents, JobQueue } from './queue.js';
import { JobRunner } from './runner.js';
import type { SqliteJobStore } from './store.js';
import type { Job, JobProgress, JobType } from './types.js';

export interface SchedulerDeps {
  store: SqliteJobStore;
  config: Config;
  ffmpeg: FfmpegTools;
  log: Logger;
  downloaders: Partial<Record<JobType, Downloader>>;
  results: ResultStore;
}

/**
 * The embedded queue (pg-boss's shape): claim the oldest PENDING job from SQLite while fewer than
 * max_concurrent_downloads run, and hand it to the JobRunner. One process sees every change, so its
 * feed and its local events are the same emitter: `job` (a stored job after any state change),
 * `progress` (job id + progress) and `retry` (job id), typed by JobEvents.
 */
export class Scheduler extends EventEmitter<JobEvents> implements JobQueue {
  private readonly runner: JobRunner;
  private accepting = false;

  constructor(private readonly deps: SchedulerDeps) {
    super();
    this.runner = new JobRunner({ ...deps, events: this });
  }

  get feed(): EventEmitter<JobEvents> {
    return this;
  }

  get local(): EventEmitter<JobEvents> {
    return this;
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
    return this.runner.size;
  }

  async submit(job: NewJob): Promise<Job> {
    if (!this.accepting) {
      throw new GabeError('SHUTTING_DOWN', 'the service is shutting down; try again shortly', {
        retryAfter: 10,
      });
    }
    if (!this.deps.downloaders[job.type]) {
      throw new GabeError('NOT_IMPLEMENTED', `downloads of type ${job.type} are not available yet`);
    }
    const admitted = this.deps.store.admit(job, admissionLimits(this.deps.config));
    this.emit('job', admitted);
    queueMicrotask(() => this.pump());
    return admitted;
  }

  totalSpeed(): number {
    return this.runner.totalSpeed();
  }

  liveProgress(id: string): JobProgress | null {
    return this.runner.liveProgress(id);
  }

  async cancel(id: string): Promise<Job | null> {
    if (await this.runner.abort(id, 'cancel')) return this.deps.store.get(id);
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
    await this.runner.stopAll();
  }

  private pump(): void {
    while (this.accepting && this.runner.size < this.deps.config.max_concurrent_downloads) {
      const job = this.deps.store.claimNext();
      if (!job) return;
      this.emit('job', job);
      void this.runner.run(job).finally(() => this.pump());
    }
  }
}
