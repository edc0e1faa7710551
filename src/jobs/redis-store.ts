import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { GabeError } from '../service/errors.js';
import type { AdmissionLimits, JobStore, ListOptions, NewJob, TransitionFields } from './job-store.js';
import { type FlatHash, fromHash, progressFields } from './redis-job-hash.js';
import {
  ACTIVE,
  ADMIT,
  CLAIM,
  DELETE,
  FINISHED_BEFORE,
  PAGE,
  PROGRESS,
  REQUEST_CANCEL,
  runScript,
  type Script,
  TRANSITION,
} from './redis-scripts.js';
import type { Job, JobProgress, JobStatus } from './types.js';

/** What a worker found when BullMQ gave it a job (see RedisJobStore.claim). */
export type ClaimOutcome = 'run' | 'resume' | 'exhausted' | 'cancelled' | 'final' | 'gone';

const CANCEL_MESSAGE = 'cancelled by the client';
const CANCEL_CODE = 'GABE_ERR_CANCELLED';
// SqliteJobStore.failExhausted's message, for a worker that died rather than the whole service.
const EXHAUSTED_MESSAGE =
  'this job has started %d times and its worker died during the last one (a crash, an out-of-memory kill or a lost host); it is not started again (max_attempts is %d)';

const STATUSES: readonly JobStatus[] = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'];

/** The moment of a change, as stored (ISO) and as the finished index scores it (ms). */
function clock(): [iso: string, ms: number] {
  const ms = Date.now();
  return [new Date(ms).toISOString(), ms];
}

/**
 * The Redis job store: behaves as SqliteJobStore (jobs/store.ts) does, field for field and error for
 * error, for any number of API nodes and workers sharing one Redis. Every step that reads and then
 * writes is one Lua script (jobs/redis-scripts.ts); plain reads are single commands. Times come from
 * the calling process's clock, as with SQLite: hosts of one cluster are expected to run NTP.
 */
export class RedisJobStore implements JobStore {
  private readonly p: string;

  /** `prefix` is queue.prefix: the store's keys live under `<prefix>:store:`, apart from BullMQ's. */
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.p = `${prefix}:store:`;
  }

  private run(s: Script, ...args: (string | number)[]): Promise<unknown> {
    return runScript(this.redis, s, [this.p, ...args]);
  }

  async admit(job: NewJob, limits: AdmissionLimits): Promise<Job> {
    const [now] = clock();
    const owner = job.owner ?? null;
    const reply = (await this.run(
      ADMIT,
      randomUUID(),
      job.type,
      JSON.stringify(job.request),
      job.clientIp,
      job.videoName,
      now,
      owner === null ? '0' : '1',
      owner ?? '',
      limits.maxQueueSize,
      limits.maxJobsPerIp,
      owner && limits.maxJobsPerOwner ? limits.maxJobsPerOwner : 0,
    )) as [string, FlatHash | number];
    const [kind, value] = reply;
    if (kind === 'ok') return fromHash(value as FlatHash);
    const n = value as number;
    if (kind === 'IP_LIMIT') {
      throw new GabeError(
        'IP_LIMIT',
        `this client already has ${n} jobs pending or processing (max_jobs_per_ip is ${limits.maxJobsPerIp}); wait for one to finish`,
        { retryAfter: 10 },
      );
    }
    if (kind === 'KEY_LIMIT') {
      throw new GabeError(
        'KEY_LIMIT',
        `this API key already has ${n} jobs pending or processing (max_jobs_per_key is ${limits.maxJobsPerOwner}); wait for one to finish`,
        { retryAfter: 10 },
      );
    }
    throw new GabeError('QUEUE_FULL', `the queue is full (${n} jobs pending); try again later`, {
      retryAfter: 30,
    });
  }

  async get(id: string): Promise<Job | null> {
    const flat = await this.redis.call('HGETALL', `${this.p}job:${id}`);
    return Array.isArray(flat) && flat.length > 0 ? fromHash(flat as FlatHash) : null;
  }

  async list(options: ListOptions): Promise<{ jobs: Job[]; total: number }> {
    const { status, owner } = options;
    let index = 'jobs';
    if (owner !== undefined) index = status ? `owner-status:${status}:${owner}` : `owner:${owner}`;
    else if (status) index = `status:${status}`;
    const [total, ...hashes] = (await this.run(PAGE, index, options.offset, options.limit)) as [
      number,
      ...FlatHash[],
    ];
    return { jobs: hashes.map(fromHash), total };
  }

  async transition(id: string, to: JobStatus, fields: TransitionFields = {}): Promise<Job | null> {
    const [now, ms] = clock();
    const flat = (await this.run(
      TRANSITION,
      id,
      to,
      now,
      ms,
      fields.result ? '1' : '0',
      fields.result ? JSON.stringify(fields.result) : '',
      fields.error != null ? '1' : '0',
      fields.error ?? '',
      fields.error_code != null ? '1' : '0',
      fields.error_code ?? '',
      fields.attempt === undefined ? '' : String(fields.attempt),
    )) as FlatHash | null;
    return flat ? fromHash(flat) : null;
  }

  async updateProgress(id: string, p: JobProgress, attempt?: number): Promise<void> {
    const { set, unset } = progressFields(p);
    const fence = attempt === undefined ? '' : String(attempt);
    await this.run(PROGRESS, id, fence, clock()[0], set.length, ...set, ...unset);
  }

  async delete(id: string): Promise<boolean> {
    return (await this.run(DELETE, id)) === 1;
  }

  async finishedBefore(cutoffIso: string, limit = 500): Promise<Job[]> {
    const cutoff = Date.parse(cutoffIso);
    if (Number.isNaN(cutoff)) throw new TypeError(`not a time: ${cutoffIso}`);
    return ((await this.run(FINISHED_BEFORE, cutoff, limit)) as FlatHash[]).map(fromHash);
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    const multi = this.redis.multi();
    for (const s of STATUSES) multi.zcard(`${this.p}status:${s}`);
    const replies = (await multi.exec()) ?? [];
    const out = {} as Record<JobStatus, number>;
    STATUSES.forEach((s, i) => {
      const [err, n] = replies[i] ?? [new Error('no reply'), 0];
      if (err) throw err;
      out[s] = Number(n);
    });
    return out;
  }

  /** Writes (and expires) a health key of its own: proves Redis takes writes (not OOM, not a replica). */
  async checkWritable(): Promise<void> {
    await this.redis.set(`${this.p}health`, String(Date.now()), 'PX', 10_000);
  }

  /** The connection belongs to the caller, who may share it: nothing to release here. */
  close(): void {}

  /**
   * A worker took job `id` from BullMQ. 'run': PENDING, now PROCESSING (attempts + 1, started_at
   * kept from an earlier start). 'resume': it was PROCESSING (its worker died), attempts + 1.
   * 'exhausted': it was PROCESSING with attempts >= maxAttempts, now FAILED (GABE_ERR_ATTEMPTS).
   * 'cancelled': a cancel was requested while it ran, now CANCELLED. 'final': already final, left
   * alone. 'gone': no such job (job null).
   */
  async claim(id: string, maxAttempts: number): Promise<{ outcome: ClaimOutcome; job: Job | null }> {
    const [now, ms] = clock();
    const [outcome, flat] = (await this.run(
      CLAIM,
      id,
      maxAttempts,
      now,
      ms,
      EXHAUSTED_MESSAGE,
      CANCEL_MESSAGE,
      CANCEL_CODE,
      'GABE_ERR_ATTEMPTS',
    )) as [ClaimOutcome, FlatHash?];
    return { outcome, job: flat ? fromHash(flat) : null };
  }

  /**
   * PENDING: CANCELLED now, `cancelled` true (only for the one caller that did it: the webhook and the
   * event are sent once). PROCESSING: the request is recorded for its worker (cancelRequested()) and
   * the job returned unchanged. Final: the job. Unknown: null.
   */
  async requestCancel(id: string): Promise<{ job: Job; cancelled: boolean } | null> {
    const [now, ms] = clock();
    const answer = (await this.run(REQUEST_CANCEL, id, now, ms, CANCEL_MESSAGE, CANCEL_CODE)) as
      | [number, FlatHash]
      | null;
    return answer ? { job: fromHash(answer[1]), cancelled: answer[0] === 1 } : null;
  }

  async cancelRequested(id: string): Promise<boolean> {
    return (await this.redis.hget(`${this.p}job:${id}`, 'cancel_requested')) === '1';
  }

  /** PENDING and PROCESSING jobs, in submission order (to reconcile with BullMQ's queue). */
  async activeJobs(): Promise<Job[]> {
    const jobs = ((await this.run(ACTIVE)) as FlatHash[]).map(fromHash);
    return jobs.sort((a, b) => a.seq - b.seq);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }
}
