/** The store contract's admission cases: what a new job holds, the limits, racing API nodes. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { isGabeError } from '../../src/service/errors.js';
import { type Fresh, JOB_FIELDS, LIMITS, newJob } from './store-fixtures.js';

export function admissionCases(fresh: Fresh): void {
  it('admits a PENDING job holding every Job field: counters zero, the unset ones null', async (t) => {
    const { store } = await fresh(t);
    const job = await store.admit(newJob({ owner: 'k1', videoName: 'v' }), LIMITS);
    assert.deepEqual(Object.keys(job).sort(), JOB_FIELDS);
    assert.equal(job.status, 'PENDING');
    assert.deepEqual(job.request, { url: 'https://example.com/a.mp4' });
    assert.equal(job.owner, 'k1');
    assert.equal(job.video_name, 'v');
    for (const f of ['progress', 'total_segments', 'downloaded_segments', 'downloaded_bytes', 'speed_bps'])
      assert.equal(job[f as keyof Job], 0, f);
    assert.equal(job.attempts, 0);
    for (const f of ['started_at', 'completed_at', 'result', 'error', 'error_code', 'total_bytes'])
      assert.equal(job[f as keyof Job], null, f);
    assert.equal(job.eta_seconds, null);
    assert.equal(job.recorded_seconds, null);
    assert.equal(job.created_at, job.updated_at);
    assert.deepEqual(await store.get(job.id), job);
    assert.equal((await store.admit(newJob(), LIMITS)).owner, null);
    assert.equal(await store.get('00000000-0000-0000-0000-000000000000'), null);
  });

  it('refuses a submission past max_queue_size with QUEUE_FULL, counting only PENDING jobs', async (t) => {
    const { store } = await fresh(t);
    const limits = { maxQueueSize: 2, maxJobsPerIp: 0 };
    const a = await store.admit(newJob(), limits);
    await store.admit(newJob(), limits);
    await assert.rejects(
      async () => store.admit(newJob(), limits),
      (e) =>
        isGabeError(e, 'QUEUE_FULL') &&
        e.httpStatus === 503 &&
        e.retryAfter === 30 &&
        e.message === 'the queue is full (2 jobs pending); try again later',
    );
    await store.transition(a.id, 'PROCESSING');
    await store.admit(newJob(), limits);
  });

  it('refuses a client at max_jobs_per_ip with IP_LIMIT until one of its jobs is final', async (t) => {
    const { store } = await fresh(t);
    const limits = { maxQueueSize: 100, maxJobsPerIp: 2 };
    const a = await store.admit(newJob({ clientIp: '1.1.1.1' }), limits);
    await store.admit(newJob({ clientIp: '1.1.1.1' }), limits);
    await store.transition(a.id, 'PROCESSING');
    await assert.rejects(
      async () => store.admit(newJob({ clientIp: '1.1.1.1' }), limits),
      (e) =>
        isGabeError(e, 'IP_LIMIT') &&
        e.httpStatus === 429 &&
        e.retryAfter === 10 &&
        e.message ===
          'this client already has 2 jobs pending or processing (max_jobs_per_ip is 2); wait for one to finish',
    );
    await store.admit(newJob({ clientIp: '2.2.2.2' }), limits);
    await store.transition(a.id, 'COMPLETED');
    await store.admit(newJob({ clientIp: '1.1.1.1' }), limits);
  });

  it('refuses an API key at max_jobs_per_key with KEY_LIMIT; jobs without an owner are not limited', async (t) => {
    const { store } = await fresh(t);
    const limits = { maxQueueSize: 100, maxJobsPerIp: 0, maxJobsPerOwner: 1 };
    const a = await store.admit(newJob({ owner: 'k1', clientIp: '1.1.1.1' }), limits);
    await assert.rejects(
      async () => store.admit(newJob({ owner: 'k1', clientIp: '2.2.2.2' }), limits),
      (e) =>
        isGabeError(e, 'KEY_LIMIT') &&
        e.httpStatus === 429 &&
        e.retryAfter === 10 &&
        e.message ===
          'this API key already has 1 jobs pending or processing (max_jobs_per_key is 1); wait for one to finish',
    );
    await store.admit(newJob({ owner: 'k2' }), limits);
    await store.admit(newJob(), limits);
    await store.admit(newJob(), limits);
    await store.transition(a.id, 'CANCELLED');
    await store.admit(newJob({ owner: 'k1' }), limits);
  });

  it('admits exactly 5 of 20 concurrent submissions made through two instances (two API nodes) with max_queue_size 5', async (t) => {
    const { store, second } = await fresh(t);
    const nodes = [store, await second()];
    const limits = { maxQueueSize: 5, maxJobsPerIp: 0 };
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, async (_, i) =>
        nodes[i % 2]!.admit(newJob({ clientIp: `10.0.0.${i}` }), limits),
      ),
    );
    const admitted = settled.filter((s) => s.status === 'fulfilled');
    assert.equal(admitted.length, 5);
    for (const s of settled) if (s.status === 'rejected') assert.ok(isGabeError(s.reason, 'QUEUE_FULL'));
    assert.equal((await nodes[1]!.countByStatus()).PENDING, 5);
  });

  it('holds max_jobs_per_ip across two instances racing for the same client', async (t) => {
    const { store, second } = await fresh(t);
    const nodes = [store, await second()];
    const limits = { maxQueueSize: 100, maxJobsPerIp: 3 };
    const settled = await Promise.allSettled(
      Array.from({ length: 12 }, async (_, i) =>
        nodes[i % 2]!.admit(newJob({ clientIp: '9.9.9.9' }), limits),
      ),
    );
    assert.equal(settled.filter((s) => s.status === 'fulfilled').length, 3);
    for (const s of settled) if (s.status === 'rejected') assert.ok(isGabeError(s.reason, 'IP_LIMIT'));
  });
}
