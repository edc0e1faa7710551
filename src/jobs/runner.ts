/**
 * Runs one claimed (PROCESSING) job to its end, wherever it was claimed: the embedded scheduler's
 * SQLite queue or a BullMQ worker. Owns the job's AbortController, progress tracking and temp folder,
 * publishes the finished file (local or S3) and records the outcome in the store.
 */
import type { EventEmitter } from 'node:events';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import { serviceRateLimiter } from '../net/rate-limiter.js';
import type { Downloader } from '../pipeline/context.js';
import { ProgressTracker } from '../pipeline/progress.js';
import type { Config } from '../service/config.js';
import { GabeError, toGabeError } from '../service/errors.js';
import type { Logger } from '../service/log.js';
import { removeLocalOutput } from '../storage/local-results.js';
import { jobTempDir, removeDir } from '../storage/paths.js';
import type { EarlyUpload, OutputFile, ResultStore } from '../storage/results.js';
import type { JobStore, TransitionFields } from './job-store.js';
import type { JobEvents } from './queue.js';
import { claimTempDir } from './temp-owner.js';
import type { Job, JobStatus, JobType } from './types.js';

/** Progress events (SSE, metrics) at most this often per job… */
const PROGRESS_EMIT_MS = 250;
/** …and the stored copy (GET /job overlays live progress, so the store may lag). */
const PROGRESS_WRITE_MS = 1000;

/**
 * 'lost': a cluster worker's hold on the job expired and another worker may run it now: stop, record
 * nothing, touch no file the other run may be using.
 */
export type StopReason = 'cancel' | 'shutdown' | 'lost';
/**
 * How a run ended; 'interrupted' = shutdown, the job is PENDING again and resumes on the next start;
 * 'lost' = stopped without a word, the job belongs to another run.
 */
export type RunOutcome = 'completed' | 'failed' | 'cancelled' | 'interrupted' | 'lost';

interface Running {
  controller: AbortController;
  tracker: ProgressTracker;
  done: Promise<RunOutcome>;
  /** Set by a live recording: a cancel aborts this (stop and keep) rather than the job. */
  stop: AbortController | null;
}

export interface RunnerDeps {
  store: Pick<JobStore, 'transition' | 'updateProgress' | 'get'>;
  config: Config;
  ffmpeg: FfmpegTools;
  log: Logger;
  downloaders: Partial<Record<JobType, Downloader>>;
  results: ResultStore;
  /** Where this process's job events go (metrics, webhooks, and in a cluster the Redis feed). */
  events: EventEmitter<JobEvents>;
}

export class JobRunner {
  private readonly running = new Map<string, Running>();
  /** max_total_speed: one budget for every job of this process (a worker's own, in a cluster). */
  private readonly limiter: ReturnType<typeof serviceRateLimiter>;

  constructor(private readonly deps: RunnerDeps) {
    this.limiter = serviceRateLimiter(deps.config.max_total_speed);
  }

  get size(): number {
    return this.running.size;
  }

  has(id: string): boolean {
    return this.running.has(id);
  }

  totalSpeed(): number {
    let sum = 0;
    for (const r of this.running.values()) sum += r.tracker.speed();
    return sum;
  }

  liveProgress(id: string) {
    return this.running.get(id)?.tracker.snapshot() ?? null;
  }

  /** Runs a job the caller has just moved to PROCESSING; resolves once its outcome is stored. */
  run(job: Job): Promise<RunOutcome> {
    const entry: Running = {
      controller: new AbortController(),
      tracker: new ProgressTracker(),
      done: Promise.resolve<RunOutcome>('failed'),
      stop: null,
    };
    this.running.set(job.id, entry);
    entry.done = this.execute(job, entry).finally(() => this.running.delete(job.id));
    return entry.done;
  }

  /**
   * Stops a job running here: 'cancel' ends it CANCELLED (a live recording COMPLETED with what it has),
   * 'shutdown' puts it back to PENDING with its partial files kept. False when it does not run here.
   */
  async abort(id: string, reason: StopReason): Promise<boolean> {
    const run = this.running.get(id);
    if (!run) return false;
    if (reason === 'cancel' && run.stop) run.stop.abort();
    else run.controller.abort(reason);
    await run.done;
    return true;
  }

  async stopAll(): Promise<void> {
    const all = [...this.running.values()];
    for (const r of all) r.controller.abort('shutdown' satisfies StopReason);
    await Promise.allSettled(all.map((r) => r.done));
  }

  /** Records an outcome of run `job` (fenced by its attempt: a stale run records nothing). */
  /** The transition, fenced by this run's attempt: false when a later run owns the job (nothing stored). */
  private async record(job: Job, to: JobStatus, fields: TransitionFields = {}): Promise<boolean> {
    const stored = await this.deps.store.transition(job.id, to, { ...fields, attempt: job.attempts });
    if (stored) this.deps.events.emit('job', stored);
    return stored !== null;
  }

  private async saveProgress(job: Job, tracker: ProgressTracker, log: Logger): Promise<void> {
    try {
      await this.deps.store.updateProgress(job.id, tracker.snapshot(), job.attempts);
    } catch (err) {
      // A store that is briefly away (Redis restarting) must not fail the download; the next write catches up.
      log.warn({ err: (err as Error).message }, 'could not store progress');
    }
  }

  private async execute(job: Job, entry: Running): Promise<RunOutcome> {
    const { controller, tracker } = entry;
    const { config, events } = this.deps;
    const log = this.deps.log.child({ job_id: job.id });
    let tempDir = jobTempDir(config.temp_path, job.id);
    let lastWrite = 0;
    let lastEmit = 0;
    const reportProgress = () => {
      const now = Date.now();
      if (now - lastEmit < PROGRESS_EMIT_MS) return;
      lastEmit = now;
      events.emit('progress', job.id, tracker.snapshot());
      if (now - lastWrite < PROGRESS_WRITE_MS) return;
      lastWrite = now;
      void this.saveProgress(job, tracker, log);
    };
    log.info({ type: job.type, url: job.request.url, attempt: job.attempts }, 'job started');
    let finished: Awaited<ReturnType<Downloader['run']>> | null = null;
    // The main file's upload, begun while the file is written when the result store can (S3).
    let early: EarlyUpload | null = null;
    const onOutputFile = (file: OutputFile) => {
      void early?.abort();
      try {
        early = this.deps.results.begin?.(job.id, file, controller.signal, log) ?? null;
      } catch (err) {
        early = null;
        log.warn({ err: (err as Error).message }, 'could not begin uploading the file while it is written');
      }
    };
    try {
      const downloader = this.deps.downloaders[job.type];
      if (!downloader) throw new GabeError('NOT_IMPLEMENTED', `no downloader for ${job.type}`);
      tempDir = await claimTempDir(config.temp_path, job, log);
      finished = await downloader.run({
        job: { id: job.id, type: job.type, request: job.request, video_name: job.video_name },
        config,
        ffmpeg: this.deps.ffmpeg,
        log,
        signal: controller.signal,
        tempDir,
        progress: tracker,
        reportProgress,
        serviceLimiter: this.limiter,
        onRetry: () => events.emit('retry', job.id),
        markLive: () => {
          entry.stop ??= new AbortController();
          return entry.stop.signal;
        },
        ...(this.deps.results.begin ? { onOutputFile } : {}),
      });
      if (controller.signal.aborted) throw new GabeError('CANCELLED', 'the job was cancelled');
      const result = await this.deps.results.publish(
        job.id,
        finished,
        controller.signal,
        log,
        early ?? undefined,
      );
      await this.saveProgress(job, tracker, log);
      if (!(await this.record(job, 'COMPLETED', { result }))) {
        // A worker took the job over while this run finished it (its lock lapsed): the other run's
        // result is the job's. A local file of ours under another name would be left behind; an S3
        // object has the same key for every run, so it stays (it is, or will be, the other's).
        const current = await this.deps.store.get(job.id);
        if (!result.output_path.startsWith('s3://') && current?.result?.output_path !== result.output_path)
          await removeLocalOutput(result, config.output_path);
        log.warn('job finished, but another run owns it now: its result is the one kept');
        return 'lost';
      }
      log.info({ output: result.output_path, size_mb: result.file_size_mb }, 'job completed');
      await removeDir(tempDir);
      return 'completed';
    } catch (raw) {
      // No multipart upload may outlive its job (after a completed one this does nothing).
      await (early as EarlyUpload | null)?.abort();
      return this.fail(job, entry, raw, { finished, tempDir }, log);
    }
  }

  private async fail(
    job: Job,
    { controller, tracker }: Running,
    raw: unknown,
    { finished, tempDir }: { finished: Awaited<ReturnType<Downloader['run']>> | null; tempDir: string },
    log: Logger,
  ): Promise<RunOutcome> {
    const reason = controller.signal.aborted ? (controller.signal.reason as StopReason) : null;
    const err = toGabeError(raw);
    // A file that downloaded but could not be uploaded stays in output_path: the result says where.
    const kept = err.code === 'GABE_ERR_UPLOAD' && finished && !reason ? { result: finished } : {};
    // Stopped while its file was being published (an S3 upload): no job will name that file again.
    if (finished && !kept.result) await removeLocalOutput(finished, this.deps.config.output_path);
    if (reason === 'lost') {
      log.warn('job stopped: this worker lost its hold on it, and another worker may be running it');
      return 'lost';
    }
    await this.saveProgress(job, tracker, log);
    if (reason === 'shutdown') {
      await this.record(job, 'PENDING');
      log.info('job interrupted by shutdown; it resumes on the next start');
      return 'interrupted';
    }
    await removeDir(tempDir).catch((e: unknown) => log.warn({ err: e }, 'could not remove temp files'));
    if (reason === 'cancel') {
      await this.record(job, 'CANCELLED', {
        error: 'cancelled by the client',
        error_code: 'GABE_ERR_CANCELLED',
      });
      log.info('job cancelled');
      return 'cancelled';
    }
    await this.record(job, 'FAILED', { error: err.message, error_code: err.code, ...kept });
    log.error(
      { code: err.code, err: err.message, cause: err.kind === 'INTERNAL' ? raw : undefined },
      'job failed',
    );
    return 'failed';
  }
}
