/**
 * What only the Redis job store does (the cluster worker's claim and cancel requests, Redis restarts,
 * exact round trips through a hash), on a real redis-server. What both stores do is in
 * store-contract.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { RedisJobStore } from '../../src/jobs/redis-store.js';
import type { JobProgress, JobResult } from '../../src/jobs/types.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { jobIn, LIMITS, newJob, RESULT } from '../helpers/store-fixtures.js';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(() => server.stop());

/** A store on a fresh prefix and its own connection, which the test quits at its end. */
function open(t: TestContext, url = server.url): { store: RedisJobStore; redis: Redis; prefix: string } {
  const redis = new Redis(url);
  t.after(() => redis.quit());
  const prefix = `t-${randomUUID()}`;
  return { store: new RedisJobStore(redis, prefix), redis, prefix };
}

const UNKNOWN = '00000000-0000-0000-0000-000000000000';

describe('Redis job store: claim', () => {
  it("'run' moves a PENDING job to PROCESSING, counting the attempt and keeping the first start time", async (t) => {
    const { store } = open(t);
    const job = await jobIn(store, 'PENDING');
    const first = await store.claim(job.id, 3);
    assert.equal(first.outcome, 'run');
    assert.equal(first.job?.status, 'PROCESSING');
    assert.equal(first.job?.attempts, 1);
    assert.ok(first.job?.started_at);
    assert.deepEqual(await store.get(job.id), first.job);
    assert.equal((await store.countByStatus()).PROCESSING, 1);
    await store.transition(job.id, 'PENDING'); // its worker shut down
    const again = await store.claim(job.id, 3);
    assert.equal(again.outcome, 'run');
    assert.equal(again.job?.attempts, 2);
    assert.equal(again.job?.started_at, first.job?.started_at);
  });

  it("'resume' gives a PROCESSING job (its worker died) another attempt while attempts < max", async (t) => {
    const { store } = open(t);
    const job = await jobIn(store, 'PENDING');
    await store.claim(job.id, 3);
    const resumed = await store.claim(job.id, 3);
    assert.equal(resumed.outcome, 'resume');
    assert.equal(resumed.job?.status, 'PROCESSING');
    assert.equal(resumed.job?.attempts, 2);
  });

  it("'exhausted' fails a PROCESSING job that has started max_attempts times with GABE_ERR_ATTEMPTS, freeing its client's place", async (t) => {
    const { store } = open(t);
    const limits = { maxQueueSize: 10, maxJobsPerIp: 1 };
    const job = await store.admit(newJob({ clientIp: '7.7.7.7' }), limits);
    await store.claim(job.id, 2);
    assert.equal((await store.claim(job.id, 2)).outcome, 'resume');
    const { outcome, job: failed } = await store.claim(job.id, 2);
    assert.equal(outcome, 'exhausted');
    assert.equal(failed?.status, 'FAILED');
    assert.equal(failed?.error_code, 'GABE_ERR_ATTEMPTS');
    assert.equal(
      failed?.error,
      'this job has started 2 times and its worker died during the last one (a crash, an out-of-memory kill or a lost host); it is not started again (max_attempts is 2)',
    );
    assert.ok(failed?.completed_at);
    assert.equal(failed?.attempts, 2);
    await store.admit(newJob({ clientIp: '7.7.7.7' }), limits);
  });

  it("'cancelled' ends a job whose cancel was requested while it ran, even if it went back to PENDING since", async (t) => {
    const { store } = open(t);
    const job = await jobIn(store, 'PENDING');
    await store.claim(job.id, 3);
    await store.requestCancel(job.id);
    const { outcome, job: cancelled } = await store.claim(job.id, 3);
    assert.equal(outcome, 'cancelled');
    assert.equal(cancelled?.status, 'CANCELLED');
    assert.equal(cancelled?.error, 'cancelled by the client');
    assert.equal(cancelled?.error_code, 'GABE_ERR_CANCELLED');

    const other = await jobIn(store, 'PENDING');
    await store.claim(other.id, 3);
    await store.requestCancel(other.id);
    await store.transition(other.id, 'PENDING');
    assert.equal((await store.claim(other.id, 3)).outcome, 'cancelled');
  });

  it("'final' leaves a finished job alone and 'gone' answers for an unknown one", async (t) => {
    const { store } = open(t);
    const done = await jobIn(store, 'COMPLETED');
    assert.deepEqual(await store.claim(done.id, 3), { outcome: 'final', job: done });
    assert.deepEqual(await store.get(done.id), done);
    assert.deepEqual(await store.claim(UNKNOWN, 3), { outcome: 'gone', job: null });
  });
});

describe('Redis job store: cancel requests', () => {
  it('cancels a PENDING job at once', async (t) => {
    const { store } = open(t);
    const job = await jobIn(store, 'PENDING');
    const answer = await store.requestCancel(job.id);
    assert.equal(answer?.cancelled, true);
    const cancelled = answer?.job;
    assert.equal(cancelled?.status, 'CANCELLED');
    assert.equal(cancelled?.error, 'cancelled by the client');
    assert.equal(cancelled?.error_code, 'GABE_ERR_CANCELLED');
    assert.ok(cancelled?.completed_at);
    assert.deepEqual(await store.get(job.id), cancelled);
    assert.deepEqual(
      await store.requestCancel(job.id),
      { job: cancelled, cancelled: false },
      'a second DELETE does not cancel it again',
    );
  });

  it('records the request for a PROCESSING job and returns it unchanged', async (t) => {
    const { store } = open(t);
    const job = await jobIn(store, 'PENDING');
    const running = (await store.claim(job.id, 3)).job!;
    assert.equal(await store.cancelRequested(job.id), false);
    assert.deepEqual(await store.requestCancel(job.id), { job: running, cancelled: false });
    assert.equal(await store.cancelRequested(job.id), true);
    assert.deepEqual(await store.get(job.id), running);
  });

  it('returns a final job unchanged and null for an unknown one', async (t) => {
    const { store } = open(t);
    const done = await jobIn(store, 'FAILED');
    assert.deepEqual(await store.requestCancel(done.id), { job: done, cancelled: false });
    assert.equal(await store.cancelRequested(done.id), false);
    assert.equal(await store.requestCancel(UNKNOWN), null);
    assert.equal(await store.cancelRequested(UNKNOWN), false);
  });
});

describe('Redis job store: data', () => {
  it('round-trips numbers, nulls, empty arrays and unicode exactly', async (t) => {
    const { store } = open(t);
    const request = {
      url: 'https://example.com/видео/a.m3u8?q=ü',
      video_name: 'Ünïcødé 動画 🎬',
      subtitle_languages: [],
      headers: { 'X-Name': 'é' },
      max_duration: 0.1,
      key: null,
    };
    const job = await store.admit(newJob({ request, videoName: 'Ünïcødé 動画 🎬', owner: 'ключ' }), LIMITS);
    await store.transition(job.id, 'PROCESSING');
    const progress: JobProgress = {
      progress: 33.333333333333336,
      total_segments: 3,
      downloaded_segments: 1,
      downloaded_bytes: 2 ** 53 - 1,
      total_bytes: null,
      speed_bps: 1234.5678901234567,
      eta_seconds: 1e-7,
      recorded_seconds: 0,
    };
    await store.updateProgress(job.id, progress);
    const running = (await store.get(job.id))!;
    for (const [k, v] of Object.entries(progress)) assert.equal(running[k as keyof JobProgress], v, k);
    const result: JobResult = {
      ...RESULT,
      video_name: 'Ünïcødé 動画 🎬',
      file_size_mb: 0.1 + 0.2,
      file_size_bytes: 2 ** 53 - 2,
      duration_seconds: 12.345678901,
      subtitles: [],
      warnings: [],
      live: { ended: 'endlist', missed_segments: 0 },
    };
    await store.transition(job.id, 'COMPLETED', { result });
    const done = (await store.get(job.id))!;
    assert.deepEqual(done.request, request);
    assert.deepEqual(done.result, result);
    assert.equal(done.video_name, 'Ünïcødé 動画 🎬');
    assert.equal(done.owner, 'ключ');
    assert.equal(done.total_bytes, null);
    assert.equal(done.downloaded_bytes, 2 ** 53 - 1);
    assert.equal(done.recorded_seconds, 0);
    assert.deepEqual((await store.list({ owner: 'ключ', limit: 5, offset: 0 })).jobs, [done]);
  });

  it('keeps jobs and the submission order across a redis-server crash (appendonly, fsync always)', async (t) => {
    const durable = await startRedis({ persistent: true });
    t.after(() => durable.stop());
    const { store } = open(t, durable.url);
    const a = await jobIn(store, 'PROCESSING', { owner: 'k' });
    const b = await jobIn(store, 'COMPLETED');
    await durable.kill();
    await durable.start();
    assert.deepEqual(await store.get(a.id), a);
    assert.deepEqual(await store.get(b.id), b);
    const c = await jobIn(store, 'PENDING', { owner: 'k' });
    assert.ok(c.seq > b.seq, 'seq continues after the restart');
    assert.deepEqual(
      (await store.activeJobs()).map((j) => j.id),
      [a.id, c.id],
    );
    assert.equal((await store.list({ owner: 'k', limit: 5, offset: 0 })).total, 2);
  });

  it('activeJobs lists PENDING and PROCESSING jobs in submission order, no final ones', async (t) => {
    const { store } = open(t);
    const p1 = await jobIn(store, 'PROCESSING');
    await jobIn(store, 'COMPLETED');
    const p2 = await jobIn(store, 'PENDING');
    const p3 = await jobIn(store, 'PROCESSING');
    await jobIn(store, 'CANCELLED');
    assert.deepEqual(
      (await store.activeJobs()).map((j) => j.id),
      [p1.id, p2.id, p3.id],
    );
  });

  it("keeps every key under '<prefix>:store:' and leaves no index key behind once every job is deleted", async (t) => {
    const { store, redis, prefix } = open(t);
    const jobs = [
      await jobIn(store, 'PENDING', { owner: 'k', clientIp: '1.2.3.4' }),
      await jobIn(store, 'PROCESSING', { owner: 'k' }),
      await jobIn(store, 'COMPLETED', { owner: 'j' }),
      await jobIn(store, 'FAILED'),
    ];
    await store.checkWritable();
    const keys = await redis.keys(`${prefix}*`);
    assert.ok(keys.length > 8);
    for (const k of keys) assert.ok(k.startsWith(`${prefix}:store:`), k);
    for (const j of jobs) await store.delete(j.id);
    assert.deepEqual((await redis.keys(`${prefix}*`)).sort(), [
      `${prefix}:store:health`,
      `${prefix}:store:seq`,
    ]);
    assert.ok((await redis.pttl(`${prefix}:store:health`)) > 0, 'the health key expires');
  });

  it('checkWritable rejects when Redis refuses writes; close() leaves the caller its connection', async (t) => {
    const { store, redis } = open(t);
    await store.ping();
    // A primary short of replicas refuses writes, as a read-only replica or a full (noeviction) one would.
    await redis.config('SET', 'min-replicas-to-write', '1');
    try {
      await assert.rejects(store.checkWritable(), /NOREPLICAS/);
    } finally {
      await redis.config('SET', 'min-replicas-to-write', '0');
    }
    await store.checkWritable();
    store.close();
    assert.equal(await redis.ping(), 'PONG');
  });
});
