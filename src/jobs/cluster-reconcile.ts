/**
 * The cluster's safety net, run now and then by one process at a time: every PENDING or PROCESSING
 * job must have a BullMQ entry that will bring it to an end. A PENDING job without one (its API node
 * died between admitting and queueing it, Redis lost the entry) is queued again; a PROCESSING job
 * without one (BullMQ gave up on it after max_attempts stalls) fails, so nothing stays PROCESSING forever.
 */
import type { EventEmitter } from 'node:events';
import type { Queue } from 'bullmq';
import type { Logger } from '../service/log.js';
import type { QueuedJob } from './cluster-queue.js';
import type { JobEvents } from './queue.js';
import type { RedisJobStore } from './redis-store.js';
import type { Job } from './types.js';

/** Younger jobs are left alone: their API node may be adding them to BullMQ right now. */
const GRACE_MS = 10_000;
const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

export interface ReconcileDeps {
  store: RedisJobStore;
  bull: Queue<QueuedJob>;
  enqueue: (job: Job) => Promise<unknown>;
  local: EventEmitter<JobEvents>;
  log: Logger;
}

export interface ReconcileReport {
  requeued: number;
  failed: number;
}

export async function reconcileOnce(deps: ReconcileDeps, now = Date.now()): Promise<ReconcileReport> {
  const report: ReconcileReport = { requeued: 0, failed: 0 };
  for (const job of await deps.store.activeJobs()) {
    if (now - Date.parse(job.updated_at) < GRACE_MS) continue;
    const state = await deps.bull.getJobState(job.id);
    if (LIVE_STATES.has(state)) continue;
    if (job.status === 'PENDING') {
      if (state !== 'unknown') await deps.bull.remove(job.id).catch(() => 0);
      await deps.enqueue(job);
      deps.log.warn({ job_id: job.id, state }, 'queued job had no queue entry; queued it again');
      report.requeued++;
      continue;
    }
    const failed = await deps.store.transition(job.id, 'FAILED', {
      error: `the job's worker stopped answering ${job.attempts} times (killed, out of memory or its host lost) and the queue gave it up; it is not started again (max_attempts)`,
      error_code: 'GABE_ERR_ATTEMPTS',
    });
    if (failed) {
      deps.local.emit('job', failed);
      deps.log.warn({ job_id: job.id, state }, 'running job had no queue entry; failed it');
      report.failed++;
    }
  }
  return report;
}

/**
 * Runs reconcileOnce every `intervalMs` in whichever process takes the Redis lock first, so a cluster
 * of many processes does it once per interval. Returns a stop function.
 */
export function scheduleReconcile(
  deps: ReconcileDeps & { lock: (ttlMs: number) => Promise<boolean> },
  intervalMs: number,
): () => void {
  let busy = false;
  const run = async () => {
    if (busy) return;
    busy = true;
    try {
      if (await deps.lock(intervalMs)) await reconcileOnce(deps);
    } catch (err) {
      deps.log.warn({ err: (err as Error).message }, 'queue reconciliation failed');
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void run(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
