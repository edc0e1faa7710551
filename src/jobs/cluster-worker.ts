/**
 * A BullMQ worker: takes jobs from the cluster queue, claims each in the RedisJobStore and runs it with
 * the same JobRunner as the embedded scheduler. BullMQ's lock and stalled-job check hand the job of a
 * worker that died (kill -9, a lost host) to another one; the claim then counts the attempt, resumes
 * from the checkpoint when the temp folder is on this host, and fails the job once max_attempts starts
 * have died.
 */
import type { EventEmitter } from 'node:events';
import { type Job as BullJob, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import type { Downloader } from '../pipeline/context.js';
import type { Config } from '../service/config.js';
import type { Logger } from '../service/log.js';
import type { ResultStore } from '../storage/results.js';
import type { ClusterBus } from './cluster-bus.js';
import { BULL_QUEUE_NAME, type QueuedJob } from './cluster-queue.js';
import type { JobEvents } from './queue.js';
import type { RedisJobStore } from './redis-store.js';
import { JobRunner } from './runner.js';
import type { JobType } from './types.js';

export interface ClusterWorkerDeps {
  store: RedisJobStore;
  bus: ClusterBus;
  /** A connection of its own: BullMQ blocks on it while it waits for jobs. */
  connection: Redis;
  config: Config;
  ffmpeg: FfmpegTools;
  log: Logger;
  downloaders: Partial<Record<JobType, Downloader>>;
  results: ResultStore;
  local: EventEmitter<JobEvents>;
  concurrency: number;
}

export class ClusterWorker {
  private readonly runner: JobRunner;
  private readonly worker: Worker<QueuedJob>;
  private readonly stopCancel: () => void;

  constructor(private readonly deps: ClusterWorkerDeps) {
    this.runner = new JobRunner({ ...deps, events: deps.local });
    const { config } = deps;
    this.worker = new Worker<QueuedJob>(BULL_QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: deps.connection,
      prefix: `${config.queue.prefix}:bull`,
      concurrency: deps.concurrency,
      lockDuration: config.queue.lock_duration_ms,
      stalledInterval: config.queue.stalled_interval_ms,
      // Gabe counts attempts itself (RedisJobStore.claim); BullMQ only has to hand the job back.
      maxStalledCount: config.max_attempts,
      autorun: false,
    });
    this.worker.on('error', (err) => deps.log.warn({ err: err.message }, 'queue worker error'));
    // Its lock expired (Redis was away longer than lock_duration_ms, or this process stalled): the stalled
    // check may give the job to another worker, so this one stops writing into the job's files at once.
    this.worker.on('lockRenewalFailed', (ids) => {
      for (const id of ids) void this.runner.abort(id, 'lost');
    });
    this.stopCancel = deps.bus.onCancel((id) => {
      void this.runner.abort(id, 'cancel');
    });
  }

  start(): void {
    void this.worker.run().catch((err: unknown) => this.deps.log.error({ err }, 'queue worker stopped'));
  }

  waitUntilReady(): Promise<void> {
    return this.worker.waitUntilReady().then(() => undefined);
  }

  get runningCount(): number {
    return this.runner.size;
  }

  totalSpeed(): number {
    return this.runner.totalSpeed();
  }

  /**
   * Stops taking jobs; running ones go back to the queue (PENDING, partial files kept) for the next
   * worker, which resumes them when it shares this host's temp_path.
   */
  async stop(): Promise<void> {
    this.stopCancel();
    const closing = this.worker.close();
    await this.runner.stopAll();
    await closing;
  }

  private async process(bullJob: BullJob<QueuedJob>, token?: string): Promise<void> {
    const { store, config, local, log } = this.deps;
    const id = bullJob.data.id;
    const { outcome, job } = await store.claim(id, config.max_attempts);
    if (!job || outcome === 'final' || outcome === 'gone') return;
    local.emit('job', job);
    if (outcome === 'exhausted' || outcome === 'cancelled') {
      log.warn({ job_id: id, outcome, attempts: job.attempts }, 'job ended when a worker took it over');
      return;
    }
    if (outcome === 'resume')
      log.info({ job_id: id, attempts: job.attempts }, 'job taken over from a worker that stopped');
    // BullMQ handed back a job this process still runs (its lock expired): that run stops first, so
    // the two never write into the same files.
    if (this.runner.has(id)) await this.runner.abort(id, 'lost');
    const running = this.runner.run(job);
    // A DELETE that arrived between the claim and now was published before this worker ran the job.
    if (await store.cancelRequested(id)) void this.runner.abort(id, 'cancel');
    const ended = await running;
    if (ended === 'interrupted') {
      // Shutdown: straight back to the queue for another worker, not after the lock expires.
      await bullJob.moveToWait(token);
      throw new WaitingError();
    }
  }
}
