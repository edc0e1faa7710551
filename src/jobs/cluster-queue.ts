/**
 * The API side of the cluster: jobs are admitted in Redis (RedisJobStore, limits counted there so
 * they hold across API nodes) and handed to BullMQ, whose workers may run anywhere. Cancellation and
 * progress travel over the ClusterBus.
 */
import type { EventEmitter } from 'node:events';
import type { Queue } from 'bullmq';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';
import type { Logger } from '../service/log.js';
import type { ClusterBus } from './cluster-bus.js';
import { admissionLimits, type NewJob } from './job-store.js';
import type { JobEvents, JobQueue } from './queue.js';
import type { RedisJobStore } from './redis-store.js';
import { isFinal, type Job, type JobProgress } from './types.js';

/** How long DELETE waits for a running job's worker to stop it before answering with the job as it is. */
const CANCEL_WAIT_MS = 15_000;

/** What BullMQ carries: only the id; the job itself lives in the RedisJobStore. */
export interface QueuedJob {
  id: string;
}

/** A running job reports progress 4 times a second; older news is not shown as live. */
const PROGRESS_STALE_MS = 30_000;

export const BULL_QUEUE_NAME = 'jobs';

/** Options of every job added to BullMQ: Gabe keeps its own record, so BullMQ keeps nothing after. */
export const BULL_JOB_OPTIONS = { removeOnComplete: true, removeOnFail: true, attempts: 1 } as const;

export interface ClusterQueueDeps {
  store: RedisJobStore;
  bull: Queue<QueuedJob>;
  bus: ClusterBus;
  config: Config;
  log: Logger;
  /** This process's job events (shared with its worker, when it has one). */
  local: EventEmitter<JobEvents>;
  /** When this process also runs a worker: its running jobs' speed and progress. */
  worker?: { totalSpeed(): number; runningCount: number };
}

export class ClusterQueue implements JobQueue {
  readonly local: EventEmitter<JobEvents>;
  /** The latest progress of running jobs from the feed, with when it came (a missed final event must not pin it). */
  private readonly progress = new Map<string, { p: JobProgress; at: number }>();
  private progressEvents = 0;
  private accepting = true;

  constructor(private readonly deps: ClusterQueueDeps) {
    this.local = deps.local;
    deps.bus.feed.on('progress', this.onProgress);
    deps.bus.feed.on('job', this.onJob);
  }

  get feed(): EventEmitter<JobEvents> {
    return this.deps.bus.feed;
  }

  get isAccepting(): boolean {
    return this.accepting;
  }

  get runningCount(): number {
    return this.deps.worker?.runningCount ?? 0;
  }

  totalSpeed(): number {
    return this.deps.worker?.totalSpeed() ?? 0;
  }

  liveProgress(id: string): JobProgress | null {
    const entry = this.progress.get(id);
    return entry && Date.now() - entry.at < PROGRESS_STALE_MS ? entry.p : null;
  }

  async submit(job: NewJob): Promise<Job> {
    if (!this.accepting) {
      throw new GabeError('SHUTTING_DOWN', 'the service is shutting down; try again shortly', {
        retryAfter: 10,
      });
    }
    const admitted = await this.deps.store.admit(job, admissionLimits(this.deps.config));
    await this.enqueue(admitted);
    this.local.emit('job', admitted);
    return admitted;
  }

  /** Hands a PENDING job to BullMQ; adding an id BullMQ already holds is a no-op, so repeats are safe. */
  enqueue(job: Job): Promise<unknown> {
    return this.deps.bull.add(job.type, { id: job.id }, { ...BULL_JOB_OPTIONS, jobId: job.id });
  }

  async cancel(id: string): Promise<Job | null> {
    const answer = await this.deps.store.requestCancel(id);
    if (!answer) return null;
    const { job, cancelled } = answer;
    if (cancelled) {
      this.local.emit('job', job);
      // Its BullMQ entry would only be claimed and dropped; a worker that holds it already refuses it.
      await this.deps.bull.remove(id).catch(() => 0);
      return job;
    }
    if (job.status !== 'PROCESSING') return job;
    const final = this.waitForFinal(id);
    await this.deps.bus.requestCancel(id);
    return final;
  }

  close(): void {
    this.accepting = false;
    this.deps.bus.feed.off('progress', this.onProgress);
    this.deps.bus.feed.off('job', this.onJob);
  }

  private waitForFinal(id: string): Promise<Job | null> {
    return new Promise((resolve) => {
      const done = (job: Job | null) => {
        clearTimeout(timer);
        this.feed.off('job', onJob);
        resolve(job);
      };
      const onJob = (job: Job) => {
        if (job.id === id && isFinal(job.status)) done(job);
      };
      // A worker that died holds the job until BullMQ notices (lock_duration_ms); its next claim cancels it.
      const timer = setTimeout(() => {
        this.deps.store.get(id).then(done, () => done(null));
      }, CANCEL_WAIT_MS);
      this.feed.on('job', onJob);
      // It may have ended on its own before this listened: then no event is coming.
      this.deps.store.get(id).then(
        (job) => {
          if (job && isFinal(job.status)) done(job);
        },
        () => {},
      );
    });
  }

  private readonly onProgress = (id: string, p: JobProgress) => {
    const now = Date.now();
    this.progress.set(id, { p, at: now });
    if (++this.progressEvents % 1000 !== 0) return;
    for (const [key, entry] of this.progress)
      if (now - entry.at > PROGRESS_STALE_MS) this.progress.delete(key);
  };

  private readonly onJob = (job: Job) => {
    if (job.status !== 'PROCESSING') this.progress.delete(job.id);
  };
}
