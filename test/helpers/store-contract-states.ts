/** The store contract's state cases: the transition table, what a transition writes, progress. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { canTransition, type JobProgress } from '../../src/jobs/types.js';
import { type Fresh, jobIn, RESULT, STATES } from './store-fixtures.js';

/** A running job 40 % of the way. */
const PROGRESS: JobProgress = {
  progress: 40,
  total_segments: 10,
  downloaded_segments: 4,
  downloaded_bytes: 4000,
  total_bytes: 10000,
  speed_bps: 1500.5,
  eta_seconds: 4,
  recorded_seconds: null,
};

export function stateCases(fresh: Fresh): void {
  it("allows exactly the transitions of types.ts's table, for every pair of states", async (t) => {
    const { store } = await fresh(t);
    for (const from of STATES) {
      for (const to of STATES) {
        const job = await jobIn(store, from);
        const moved = await store.transition(job.id, to);
        const allowed = canTransition(from, to);
        assert.equal(moved !== null, allowed, `${from} -> ${to}`);
        assert.equal((await store.get(job.id))?.status, allowed ? to : from, `${from} -> ${to} stored`);
      }
    }
    assert.equal(await store.transition('00000000-0000-0000-0000-000000000000', 'CANCELLED'), null);
  });

  it("records a run's progress and outcome only while the job is still in that run's attempt", async (t) => {
    const { store } = await fresh(t);
    const job = await jobIn(store, 'PROCESSING');
    const progress = { ...PROGRESS, speed_bps: 1 };
    // A run of another attempt: a worker that lost the job to the one now running it.
    const stale = job.attempts + 1;
    await store.updateProgress(job.id, progress, stale);
    assert.equal((await store.get(job.id))?.progress, 0, 'a stale run stores no progress');
    assert.equal(await store.transition(job.id, 'COMPLETED', { result: RESULT, attempt: stale }), null);
    assert.equal((await store.get(job.id))?.status, 'PROCESSING', 'nor an outcome');
    await store.updateProgress(job.id, progress, job.attempts);
    assert.equal((await store.get(job.id))?.progress, 40);
    const done = await store.transition(job.id, 'COMPLETED', { result: RESULT, attempt: job.attempts });
    assert.equal(done?.status, 'COMPLETED');
  });

  it('a final transition sets completed_at and stops speed and ETA; COMPLETED is 100 %; back to PENDING clears nothing else', async (t) => {
    const { store } = await fresh(t);
    const running = await jobIn(store, 'PROCESSING');
    const progress = PROGRESS;
    await store.updateProgress(running.id, progress);
    const requeued = (await store.transition(running.id, 'PENDING'))!;
    assert.equal(requeued.completed_at, null);
    assert.equal(requeued.speed_bps, 1500.5);
    assert.equal(requeued.eta_seconds, 4);
    await store.transition(running.id, 'PROCESSING');
    const done = (await store.transition(running.id, 'COMPLETED', { result: RESULT }))!;
    assert.equal(done.status, 'COMPLETED');
    assert.equal(done.progress, 100);
    assert.equal(done.speed_bps, 0);
    assert.equal(done.eta_seconds, null);
    assert.equal(done.downloaded_bytes, 4000);
    assert.ok(done.completed_at);
    assert.equal(done.completed_at, done.updated_at);
    assert.deepEqual(done.result, RESULT);

    const other = await jobIn(store, 'PROCESSING');
    await store.updateProgress(other.id, progress);
    const failed = (await store.transition(other.id, 'FAILED', {
      error: 'boom',
      error_code: 'GABE_ERR_HTTP',
    }))!;
    assert.equal(failed.progress, 40, 'only COMPLETED jumps to 100');
    assert.equal(failed.speed_bps, 0);
    assert.equal(failed.error, 'boom');
    assert.equal(failed.error_code, 'GABE_ERR_HTTP');
  });

  it('transition keeps the stored result unless given one, and sets or clears error and error_code', async (t) => {
    const { store } = await fresh(t);
    const job = await jobIn(store, 'PROCESSING');
    const live = await store.transition(job.id, 'PENDING', {
      result: RESULT,
      error: 'x',
      error_code: 'GABE_ERR_X',
    });
    assert.deepEqual(live?.result, RESULT);
    assert.equal(live?.error, 'x');
    assert.equal(live?.error_code, 'GABE_ERR_X');
    const again = await store.transition(job.id, 'PROCESSING');
    assert.deepEqual(again?.result, RESULT, 'kept');
    assert.equal(again?.error, null, 'cleared');
    assert.equal(again?.error_code, null, 'cleared');
    const empty = await store.transition(job.id, 'FAILED', { error: '' });
    assert.equal(empty?.error, '');
    assert.equal(empty?.error_code, null);
  });

  it('stores progress only while the job is PROCESSING', async (t) => {
    const { store } = await fresh(t);
    const p = {
      progress: 12.5,
      total_segments: 8,
      downloaded_segments: 1,
      downloaded_bytes: 123,
      total_bytes: null,
      speed_bps: 10,
      eta_seconds: null,
      recorded_seconds: 3.5,
    };
    const pending = await jobIn(store, 'PENDING');
    await store.updateProgress(pending.id, p);
    assert.deepEqual(await store.get(pending.id), pending);
    const done = await jobIn(store, 'COMPLETED');
    await store.updateProgress(done.id, p);
    assert.deepEqual(await store.get(done.id), done);
    const running = await jobIn(store, 'PROCESSING');
    await store.updateProgress(running.id, p);
    const stored = (await store.get(running.id))!;
    assert.deepEqual({ ...stored, updated_at: '' }, { ...running, ...p, updated_at: '' });
    await store.updateProgress(running.id, {
      ...p,
      total_bytes: 999,
      eta_seconds: 2,
      recorded_seconds: null,
    });
    const next = (await store.get(running.id))!;
    assert.equal(next.total_bytes, 999);
    assert.equal(next.eta_seconds, 2);
    assert.equal(next.recorded_seconds, null);
    await store.updateProgress('00000000-0000-0000-0000-000000000000', p);
  });
}
