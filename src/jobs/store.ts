import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { GabeError } from '../service/errors.js';
import { fromRow, type JobRow } from './job-rows.js';
import type { AdmissionLimits, JobStore, ListOptions, NewJob, TransitionFields } from './job-store.js';
import { migrate } from './store-schema.js';
import { canTransition, type Job, type JobProgress, type JobStatus } from './types.js';

const now = () => new Date().toISOString();

/** The SQLite job store. better-sqlite3 is synchronous: every method here is one short transaction. */
export class SqliteJobStore implements JobStore {
  readonly db: Database.Database;

  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /**
   * Inserts a PENDING job unless a limit says no. Counting and inserting happen in one IMMEDIATE
   * transaction, so two submissions racing for the last queue place cannot both win.
   */
  admit(job: NewJob, limits: AdmissionLimits): Job {
    const tx = this.db.transaction((): Job => {
      if (limits.maxJobsPerIp > 0) {
        const { n } = this.db
          .prepare(
            `SELECT COUNT(*) AS n FROM jobs WHERE client_ip = ? AND status IN ('PENDING','PROCESSING')`,
          )
          .get(job.clientIp) as { n: number };
        if (n >= limits.maxJobsPerIp) {
          throw new GabeError(
            'IP_LIMIT',
            `this client already has ${n} jobs pending or processing (max_jobs_per_ip is ${limits.maxJobsPerIp}); wait for one to finish`,
            { retryAfter: 10 },
          );
        }
      }
      if (job.owner && limits.maxJobsPerOwner) {
        const { n } = this.db
          .prepare(`SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND status IN ('PENDING','PROCESSING')`)
          .get(job.owner) as { n: number };
        if (n >= limits.maxJobsPerOwner) {
          throw new GabeError(
            'KEY_LIMIT',
            `this API key already has ${n} jobs pending or processing (max_jobs_per_key is ${limits.maxJobsPerOwner}); wait for one to finish`,
            { retryAfter: 10 },
          );
        }
      }
      const { pending } = this.db
        .prepare(`SELECT COUNT(*) AS pending FROM jobs WHERE status = 'PENDING'`)
        .get() as {
        pending: number;
      };
      if (pending >= limits.maxQueueSize) {
        throw new GabeError('QUEUE_FULL', `the queue is full (${pending} jobs pending); try again later`, {
          retryAfter: 30,
        });
      }
      const t = now();
      const row = this.db
        .prepare(
          `INSERT INTO jobs (id, type, status, request, client_ip, video_name, created_at, updated_at, owner)
           VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?) RETURNING *`,
        )
        .get(
          randomUUID(),
          job.type,
          JSON.stringify(job.request),
          job.clientIp,
          job.videoName,
          t,
          t,
          job.owner ?? null,
        ) as JobRow;
      return fromRow(row);
    });
    return tx.immediate();
  }

  get(id: string): Job | null {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row ? fromRow(row) : null;
  }

  list(options: ListOptions): { jobs: Job[]; total: number } {
    const clauses: string[] = [];
    const params: string[] = [];
    if (options.status) {
      clauses.push('status = ?');
      params.push(options.status);
    }
    if (options.owner !== undefined) {
      clauses.push('owner = ?');
      params.push(options.owner);
    }
    const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
    const rows = this.db
      .prepare(`SELECT * FROM jobs ${where} ORDER BY seq DESC LIMIT ? OFFSET ?`)
      .all(...params, options.limit, options.offset) as JobRow[];
    const { n } = this.db.prepare(`SELECT COUNT(*) AS n FROM jobs ${where}`).get(...params) as { n: number };
    return { jobs: rows.map(fromRow), total: n };
  }

  /** Atomically takes the oldest PENDING job and marks it PROCESSING (FIFO by insertion order). */
  claimNext(): Job | null {
    const t = now();
    const row = this.db
      .prepare(
        `UPDATE jobs SET status = 'PROCESSING', started_at = COALESCE(started_at, ?), updated_at = ?,
           attempts = attempts + 1
         WHERE seq = (SELECT seq FROM jobs WHERE status = 'PENDING' ORDER BY seq LIMIT 1)
         RETURNING *`,
      )
      .get(t, t) as JobRow | undefined;
    return row ? fromRow(row) : null;
  }

  /**
   * Moves a job to a new state if the transition is allowed from its current one; returns the job as
   * stored afterwards, or null when the job is gone or the transition was refused (someone else won).
   */
  transition(id: string, to: JobStatus, fields: TransitionFields = {}): Job | null {
    const tx = this.db.transaction((): Job | null => {
      const current = this.get(id);
      if (!current || !canTransition(current.status, to)) return null;
      if (fields.attempt !== undefined && current.attempts !== fields.attempt) return null;
      const t = now();
      const final = to === 'COMPLETED' || to === 'FAILED' || to === 'CANCELLED';
      const row = this.db
        .prepare(
          `UPDATE jobs SET status = ?, updated_at = ?, completed_at = ?, result = COALESCE(?, result),
             error = ?, error_code = ?, speed_bps = CASE WHEN ? THEN 0 ELSE speed_bps END,
             eta_seconds = CASE WHEN ? THEN NULL ELSE eta_seconds END,
             progress = CASE WHEN ? = 'COMPLETED' THEN 100 ELSE progress END
           WHERE id = ? RETURNING *`,
        )
        .get(
          to,
          t,
          final ? t : null,
          fields.result ? JSON.stringify(fields.result) : null,
          fields.error ?? null,
          fields.error_code ?? null,
          final ? 1 : 0,
          final ? 1 : 0,
          to,
          id,
        ) as JobRow;
      return fromRow(row);
    });
    return tx.immediate();
  }

  updateProgress(id: string, p: JobProgress, attempt?: number): void {
    this.db
      .prepare(
        `UPDATE jobs SET progress = ?, total_segments = ?, downloaded_segments = ?, downloaded_bytes = ?,
           total_bytes = ?, speed_bps = ?, eta_seconds = ?, recorded_seconds = ?, updated_at = ?
         WHERE id = ? AND status = 'PROCESSING' AND (? IS NULL OR attempts = ?)`,
      )
      .run(
        p.progress,
        p.total_segments,
        p.downloaded_segments,
        p.downloaded_bytes,
        p.total_bytes,
        p.speed_bps,
        p.eta_seconds,
        p.recorded_seconds,
        now(),
        id,
        attempt ?? null,
        attempt ?? null,
      );
  }

  /**
   * On start-up, before requeueInterrupted: jobs left PROCESSING (their process died while they ran)
   * that have started `maxAttempts` times fail with GABE_ERR_ATTEMPTS instead of going back to the
   * queue, so a job that brings the process down cannot do so forever. Returns the failed jobs.
   */
  failExhausted(maxAttempts: number): Job[] {
    const t = now();
    const rows = this.db
      .prepare(
        `UPDATE jobs SET status = 'FAILED', updated_at = ?, completed_at = ?, speed_bps = 0, eta_seconds = NULL,
           error = 'this job has started ' || attempts || ' times and the service died during the last one (a crash, an out-of-memory kill or a power loss); it is not started again (max_attempts is ' || ? || ')',
           error_code = 'GABE_ERR_ATTEMPTS'
         WHERE status = 'PROCESSING' AND attempts >= ?
         RETURNING *`,
      )
      .all(t, t, maxAttempts, maxAttempts) as JobRow[];
    return rows.map(fromRow);
  }

  /** On start-up: jobs that were PROCESSING when the last process died go back to the queue's front. */
  requeueInterrupted(): number {
    return this.db
      .prepare(
        `UPDATE jobs SET status = 'PENDING', speed_bps = 0, eta_seconds = NULL, updated_at = ? WHERE status = 'PROCESSING'`,
      )
      .run(now()).changes;
  }

  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM jobs WHERE id = ?').run(id).changes > 0;
  }

  /** Final jobs whose completion is older than the cutoff (ISO time), oldest first. */
  finishedBefore(cutoffIso: string, limit = 500): Job[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM jobs WHERE status IN ('COMPLETED','FAILED','CANCELLED') AND completed_at < ?
         ORDER BY completed_at LIMIT ?`,
      )
      .all(cutoffIso, limit) as JobRow[];
    return rows.map(fromRow);
  }

  countByStatus(): Record<JobStatus, number> {
    const out: Record<JobStatus, number> = {
      PENDING: 0,
      PROCESSING: 0,
      COMPLETED: 0,
      FAILED: 0,
      CANCELLED: 0,
    };
    const rows = this.db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as {
      status: JobStatus;
      n: number;
    }[];
    for (const r of rows) out[r.status] = r.n;
    return out;
  }

  allIds(): Set<string> {
    return new Set((this.db.prepare('SELECT id FROM jobs').all() as { id: string }[]).map((r) => r.id));
  }

  /** Proves the database accepts writes (for /health) without touching any job. */
  checkWritable(): void {
    this.db.exec('BEGIN IMMEDIATE; ROLLBACK;');
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
