/** The store contract's query cases: lists, the retention query, delete, counts, health. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ListOptions } from '../../src/jobs/job-store.js';
import type { Job } from '../../src/jobs/types.js';
import { type Fresh, ids, jobIn, LIMITS, newJob } from './store-fixtures.js';

export function queryCases(fresh: Fresh): void {
  it('lists newest first with the total, filtered by status and owner, paged by limit and offset', async (t) => {
    const { store } = await fresh(t);
    const jobs: Job[] = [];
    for (let i = 0; i < 6; i++)
      jobs.push(await store.admit(newJob({ owner: i % 2 ? 'odd' : 'even' }), LIMITS));
    await store.transition(jobs[1]!.id, 'PROCESSING');
    await store.transition(jobs[4]!.id, 'PROCESSING');
    await store.transition(jobs[4]!.id, 'COMPLETED');
    const [j0, j1, j2, j3, j4, j5] = jobs.map((j) => j.id);
    const page = async (o: ListOptions) => {
      const r = await store.list(o);
      return [ids(r.jobs), r.total];
    };
    const all = await store.list({ limit: 100, offset: 0 });
    assert.deepEqual(ids(all.jobs), [j5, j4, j3, j2, j1, j0]);
    assert.equal(all.total, 6);
    assert.ok(all.jobs.every((j, i, a) => i === 0 || a[i - 1]!.seq > j.seq));
    assert.deepEqual(await page({ limit: 2, offset: 1 }), [[j4, j3], 6]);
    assert.deepEqual(await page({ limit: 2, offset: 5 }), [[j0], 6]);
    assert.deepEqual(await page({ limit: 2, offset: 9 }), [[], 6]);
    assert.deepEqual(await page({ limit: 0, offset: 0 }), [[], 6]);
    const pending = await store.list({ status: 'PENDING', limit: 10, offset: 0 });
    assert.deepEqual([ids(pending.jobs), pending.total], [[j5, j3, j2, j0], 4]);
    const odd = await store.list({ owner: 'odd', limit: 10, offset: 0 });
    assert.deepEqual([ids(odd.jobs), odd.total], [[j5, j3, j1], 3]);
    const oddPending = await store.list({ owner: 'odd', status: 'PENDING', limit: 1, offset: 1 });
    assert.deepEqual([ids(oddPending.jobs), oddPending.total], [[j3], 2]);
    const evenDone = await store.list({ owner: 'even', status: 'COMPLETED', limit: 10, offset: 0 });
    assert.deepEqual([ids(evenDone.jobs), evenDone.total], [[j4], 1]);
    assert.deepEqual(await store.list({ owner: 'nobody', limit: 10, offset: 0 }), { jobs: [], total: 0 });
    assert.deepEqual(await store.list({ status: 'FAILED', limit: 10, offset: 0 }), { jobs: [], total: 0 });
  });

  it('finishedBefore returns final jobs completed before the cutoff, oldest first, at most `limit`', async (t) => {
    const { store } = await fresh(t);
    const done: Job[] = [];
    for (const status of ['FAILED', 'COMPLETED', 'CANCELLED', 'COMPLETED'] as const) {
      done.push(await jobIn(store, status));
      await sleep(3);
    }
    await jobIn(store, 'PENDING');
    await jobIn(store, 'PROCESSING');
    const cutoff = done[3]!.completed_at!;
    assert.deepEqual(ids(await store.finishedBefore(cutoff)), ids(done.slice(0, 3)), 'strictly before');
    assert.deepEqual(ids(await store.finishedBefore(cutoff, 2)), ids(done.slice(0, 2)));
    assert.deepEqual(ids(await store.finishedBefore(new Date(Date.now() + 1000).toISOString())), ids(done));
    assert.deepEqual(await store.finishedBefore(done[0]!.completed_at!), []);
  });

  it('delete removes a job from get, lists, counts, the finished index and admission counts', async (t) => {
    const { store } = await fresh(t);
    const limits = { maxQueueSize: 100, maxJobsPerIp: 1, maxJobsPerOwner: 1 };
    const active = await store.admit(newJob({ clientIp: '5.5.5.5', owner: 'k' }), limits);
    const final = await jobIn(store, 'COMPLETED');
    assert.equal(await store.delete(active.id), true);
    assert.equal(await store.delete(active.id), false);
    assert.equal(await store.delete(final.id), true);
    assert.equal(await store.get(active.id), null);
    assert.deepEqual(await store.list({ limit: 10, offset: 0 }), { jobs: [], total: 0 });
    assert.deepEqual(await store.list({ owner: 'k', limit: 10, offset: 0 }), { jobs: [], total: 0 });
    assert.deepEqual(Object.values(await store.countByStatus()), [0, 0, 0, 0, 0]);
    assert.deepEqual(await store.finishedBefore(new Date(Date.now() + 1000).toISOString()), []);
    await store.admit(newJob({ clientIp: '5.5.5.5', owner: 'k' }), limits);
  });

  it('countByStatus counts every state, zero included', async (t) => {
    const { store } = await fresh(t);
    assert.deepEqual(await store.countByStatus(), {
      PENDING: 0,
      PROCESSING: 0,
      COMPLETED: 0,
      FAILED: 0,
      CANCELLED: 0,
    });
    for (const [status, n] of [
      ['PENDING', 3],
      ['PROCESSING', 2],
      ['COMPLETED', 1],
      ['CANCELLED', 2],
    ] as const) {
      for (let i = 0; i < n; i++) await jobIn(store, status);
    }
    assert.deepEqual(await store.countByStatus(), {
      PENDING: 3,
      PROCESSING: 2,
      COMPLETED: 1,
      FAILED: 0,
      CANCELLED: 2,
    });
  });

  it('checkWritable succeeds on a writable store without adding a job', async (t) => {
    const { store } = await fresh(t);
    await store.checkWritable();
    assert.equal((await store.list({ limit: 10, offset: 0 })).total, 0);
  });
}
