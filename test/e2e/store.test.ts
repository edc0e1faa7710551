import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteJobStore } from '../../src/jobs/store.js';
import { MIGRATIONS } from '../../src/jobs/store-schema.js';
import { isGabeError } from '../../src/service/errors.js';
import { tempDir } from '../helpers/tmp.js';

const LIMITS = { maxQueueSize: 100, maxJobsPerIp: 0 };
const newJob = (ip = '10.0.0.1', url = 'https://example.com/a.mp4') => ({
  type: 'mp4' as const,
  request: { url },
  clientIp: ip,
  videoName: 'a',
});

describe('job store (SQLite)', () => {
  it('creates a WAL database at the versioned schema and keeps jobs across reopen', () => {
    const file = path.join(tempDir(), 'sub', 'jobs.db');
    const store = new SqliteJobStore(file);
    assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(store.schemaVersion, MIGRATIONS.length);
    const job = store.admit(newJob(), LIMITS);
    store.close();
    const again = new SqliteJobStore(file);
    assert.equal(again.get(job.id)?.request.url, 'https://example.com/a.mp4');
    assert.equal(again.get(job.id)?.status, 'PENDING');
    again.close();
  });

  it('migrates a schema-1 database forward, keeping its jobs', () => {
    const file = path.join(tempDir(), 'jobs.db');
    const db = new Database(file);
    db.exec(MIGRATIONS[0]!);
    db.pragma('user_version = 1');
    db.prepare(
      `INSERT INTO jobs (id, type, status, request, client_ip, video_name, created_at, updated_at)
       VALUES ('11111111-1111-1111-1111-111111111111', 'mp4', 'COMPLETED', '{"url":"https://e.x/a.mp4"}', '1.2.3.4', 'a', 'x', 'x')`,
    ).run();
    db.close();
    const store = new SqliteJobStore(file);
    assert.equal(store.schemaVersion, MIGRATIONS.length);
    const job = store.get('11111111-1111-1111-1111-111111111111');
    assert.equal(job?.status, 'COMPLETED');
    assert.equal(job?.owner, null);
    store.close();
  });

  it('refuses a database written by a newer schema', () => {
    const file = path.join(tempDir(), 'jobs.db');
    const db = new Database(file);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(
      () => new SqliteJobStore(file),
      (e) => isGabeError(e, 'CONFIG') && /newer/.test(e.message),
    );
  });

  it('claims jobs in FIFO order, atomically marking them PROCESSING', () => {
    const store = new SqliteJobStore(path.join(tempDir(), 'jobs.db'));
    const a = store.admit(newJob(), LIMITS);
    const b = store.admit(newJob(), LIMITS);
    const first = store.claimNext();
    assert.equal(first?.id, a.id);
    assert.equal(first?.status, 'PROCESSING');
    assert.ok(first?.started_at);
    assert.equal(store.claimNext()?.id, b.id);
    assert.equal(store.claimNext(), null);
    store.close();
  });

  it('enforces max_queue_size and max_jobs_per_ip at admission', () => {
    const store = new SqliteJobStore(path.join(tempDir(), 'jobs.db'));
    store.admit(newJob('1.1.1.1'), { maxQueueSize: 2, maxJobsPerIp: 1 });
    assert.throws(
      () => store.admit(newJob('1.1.1.1'), { maxQueueSize: 2, maxJobsPerIp: 1 }),
      (e) => isGabeError(e, 'IP_LIMIT') && e.httpStatus === 429,
    );
    store.admit(newJob('2.2.2.2'), { maxQueueSize: 2, maxJobsPerIp: 1 });
    assert.throws(
      () => store.admit(newJob('3.3.3.3'), { maxQueueSize: 2, maxJobsPerIp: 1 }),
      (e) => isGabeError(e, 'QUEUE_FULL') && e.httpStatus === 503,
    );
    // A finished job no longer counts against its IP.
    const claimed = store.claimNext()!;
    store.transition(claimed.id, 'COMPLETED');
    store.admit(newJob('1.1.1.1'), { maxQueueSize: 2, maxJobsPerIp: 1 });
    store.close();
  });

  it('allows only the transitions of the state machine', () => {
    const store = new SqliteJobStore(path.join(tempDir(), 'jobs.db'));
    const job = store.admit(newJob(), LIMITS);
    assert.equal(store.transition(job.id, 'COMPLETED'), null, 'PENDING cannot complete');
    store.claimNext();
    const done = store.transition(job.id, 'COMPLETED');
    assert.equal(done?.status, 'COMPLETED');
    assert.equal(done?.progress, 100);
    assert.ok(done?.completed_at);
    assert.equal(store.transition(job.id, 'CANCELLED'), null, 'a final job stays final');
    store.close();
  });

  it('re-queues PROCESSING jobs on start-up, keeping their place', () => {
    const store = new SqliteJobStore(path.join(tempDir(), 'jobs.db'));
    const a = store.admit(newJob(), LIMITS);
    store.admit(newJob(), LIMITS);
    store.claimNext();
    assert.equal(store.requeueInterrupted(), 1);
    assert.equal(store.get(a.id)?.status, 'PENDING');
    assert.equal(store.claimNext()?.id, a.id, 'the interrupted job runs first again');
    assert.equal(store.get(a.id)?.attempts, 2);
    store.close();
  });

  it('fails a job found PROCESSING at start-up once it has started max_attempts times, instead of re-queueing it', () => {
    const store = new SqliteJobStore(path.join(tempDir(), 'jobs.db'));
    const job = store.admit(newJob(), LIMITS);
    for (let start = 1; start <= 3; start++) {
      // A start of the service: what the last process left PROCESSING died with it.
      assert.deepEqual(store.failExhausted(3), [], `start ${start}: attempts ${start - 1} < 3`);
      store.requeueInterrupted();
      assert.equal(store.claimNext()?.id, job.id);
      assert.equal(store.get(job.id)?.attempts, start);
    }
    const failed = store.failExhausted(3);
    assert.deepEqual(
      failed.map((j) => j.id),
      [job.id],
    );
    assert.equal(store.requeueInterrupted(), 0, 'the failed job is not re-queued');
    const stored = store.get(job.id)!;
    assert.equal(stored.status, 'FAILED');
    assert.equal(stored.error_code, 'GABE_ERR_ATTEMPTS');
    assert.match(stored.error ?? '', /3 times.*max_attempts is 3/);
    assert.ok(stored.completed_at);
    assert.equal(store.claimNext(), null);
    store.close();
  });

  it('lists newest first with status filter, limit and offset', () => {
    const store = new SqliteJobStore(path.join(tempDir(), 'jobs.db'));
    const ids = Array.from({ length: 5 }, () => store.admit(newJob(), LIMITS).id);
    const page = store.list({ limit: 2, offset: 1 });
    assert.deepEqual(
      page.jobs.map((j) => j.id),
      [ids[3], ids[2]],
    );
    assert.equal(page.total, 5);
    store.claimNext();
    assert.equal(store.list({ status: 'PROCESSING', limit: 10, offset: 0 }).total, 1);
    store.close();
  });
});
