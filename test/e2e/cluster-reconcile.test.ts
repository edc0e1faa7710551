/**
 * The cluster's safety net against a real redis-server and real BullMQ: an active job without a live
 * queue entry is queued again (PENDING) or failed (PROCESSING), and jobs whose entry is alive are left
 * alone.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BULL_JOB_OPTIONS, BULL_QUEUE_NAME, type QueuedJob } from '../../src/jobs/cluster-queue.js';
import { reconcileOnce } from '../../src/jobs/cluster-reconcile.js';
import type { JobEvents } from '../../src/jobs/queue.js';
import { RedisJobStore } from '../../src/jobs/redis-store.js';
import type { Job } from '../../src/jobs/types.js';
import { createLogger } from '../../src/service/log.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { jobIn } from '../helpers/store-fixtures.js';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(() => server.stop());

/** Later than every job's grace period: what reconcileOnce sees a while after these jobs were made. */
const LATER = () => Date.now() + 60_000;

function open(t: TestContext) {
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const prefix = `t-${randomUUID()}`;
  const store = new RedisJobStore(redis, prefix);
  const bull = new Queue<QueuedJob>(BULL_QUEUE_NAME, { connection: redis, prefix: `${prefix}:bull` });
  const local = new EventEmitter<JobEvents>();
  const emitted: Job[] = [];
  local.on('job', (job) => emitted.push(job));
  const enqueue = (job: Job) => bull.add(job.type, { id: job.id }, { ...BULL_JOB_OPTIONS, jobId: job.id });
  t.after(async () => {
    await bull.close();
    await redis.quit();
  });
  const deps = { store, bull, enqueue, local, log: createLogger({ stdout: false }) };
  return { store, bull, enqueue, emitted, deps };
}

describe('cluster reconciliation', () => {
  it('queues again a PENDING job that has no queue entry (its API node died before queueing it)', async (t) => {
    const { store, bull, deps } = open(t);
    const job = await jobIn(store, 'PENDING');
    assert.equal(await bull.getJobState(job.id), 'unknown');
    assert.deepEqual(await reconcileOnce(deps, LATER()), { requeued: 1, failed: 0 });
    assert.equal(await bull.getJobState(job.id), 'waiting');
    assert.equal((await store.get(job.id))?.status, 'PENDING');
  });

  it('fails a PROCESSING job that has no queue entry, with GABE_ERR_ATTEMPTS, and announces it once', async (t) => {
    const { store, deps, emitted } = open(t);
    const pending = await jobIn(store, 'PENDING');
    const running = (await store.claim(pending.id, 3)).job!;
    assert.deepEqual(await reconcileOnce(deps, LATER()), { requeued: 0, failed: 1 });
    const failed = await store.get(running.id);
    assert.equal(failed?.status, 'FAILED');
    assert.equal(failed?.error_code, 'GABE_ERR_ATTEMPTS');
    assert.match(failed?.error ?? '', /worker stopped answering/);
    assert.deepEqual(
      emitted.map((j) => [j.id, j.status]),
      [[running.id, 'FAILED']],
    );
    assert.deepEqual(await reconcileOnce(deps, LATER()), { requeued: 0, failed: 0 }, 'nothing left to do');
  });

  it('leaves alone jobs whose queue entry is alive, and jobs younger than the grace period', async (t) => {
    const { store, enqueue, deps, emitted } = open(t);
    const queued = await jobIn(store, 'PENDING');
    await enqueue(queued);
    const young = await jobIn(store, 'PENDING');
    assert.deepEqual(await reconcileOnce(deps, Date.now()), { requeued: 0, failed: 0 });
    assert.deepEqual(
      await reconcileOnce(deps, LATER()),
      { requeued: 1, failed: 0 },
      'only the young one, later',
    );
    assert.equal((await store.get(young.id))?.status, 'PENDING');
    assert.deepEqual(emitted, []);
  });
});
