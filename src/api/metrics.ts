import type { FastifyPluginAsync } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { JobStore } from '../jobs/job-store.js';
import type { JobQueue } from '../jobs/queue.js';
import { isFinal, type Job, type JobProgress } from '../jobs/types.js';

export interface MetricsRoutesOptions {
  queue: JobQueue;
  store: JobStore;
}

/**
 * Prometheus metrics on a registry of this app's own (not prom-client's global one), so two services
 * in one process, as in tests, never share counters.
 */
export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, { queue, store }) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gabe_' });
  storeGauges(registry, queue, store);
  const unfollow = followJobs(registry, queue);
  app.addHook('onClose', async () => unfollow());

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics', tags: ['service'] } },
    async (_req, reply) => {
      reply.type(registry.contentType);
      return registry.metrics();
    },
  );
};

/** Gauges read when /metrics is scraped: jobs by state, the queue, the current download speed. */
function storeGauges(registry: Registry, queue: JobQueue, store: JobStore): void {
  new Gauge({
    name: 'gabe_jobs',
    help: 'Jobs in the store by state.',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      for (const [state, n] of Object.entries(await store.countByStatus())) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'gabe_queue_depth',
    help: 'Jobs waiting to start (PENDING), in the whole cluster when the queue is in Redis.',
    registers: [registry],
    async collect() {
      this.set((await store.countByStatus()).PENDING);
    },
  });
  new Gauge({
    name: 'gabe_download_speed_bytes_per_second',
    help: 'Sum of the current download speeds of the jobs running in this process.',
    registers: [registry],
    collect() {
      this.set(queue.totalSpeed());
    },
  });
}

/** Counters and the duration histogram, fed by the scheduler's events; returns the unsubscribe. */
function followJobs(registry: Registry, queue: JobQueue): () => void {
  const bytes = new Counter({
    name: 'gabe_downloaded_bytes_total',
    help: 'Bytes received from origins.',
    registers: [registry],
  });
  const retries = new Counter({
    name: 'gabe_retries_total',
    help: 'Requests retried after a failure (segments, playlists, keys, files).',
    registers: [registry],
  });
  const finished = new Counter({
    name: 'gabe_jobs_finished_total',
    help: 'Jobs that reached a final state.',
    labelNames: ['type', 'state'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'gabe_job_duration_seconds',
    help: 'From start of processing to the final state.',
    labelNames: ['type', 'state'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [registry],
  });

  const seenBytes = new Map<string, number>();
  const onProgress = (id: string, p: JobProgress) => {
    const before = seenBytes.get(id) ?? 0;
    if (p.downloaded_bytes > before) bytes.inc(p.downloaded_bytes - before);
    seenBytes.set(id, p.downloaded_bytes);
  };
  const onJob = (job: Job) => {
    if (!isFinal(job.status)) return;
    const before = seenBytes.get(job.id) ?? 0;
    if (job.status !== 'CANCELLED' || before > 0) bytes.inc(Math.max(0, job.downloaded_bytes - before));
    seenBytes.delete(job.id);
    finished.inc({ type: job.type, state: job.status });
    if (job.started_at && job.completed_at) {
      const secs = (Date.parse(job.completed_at) - Date.parse(job.started_at)) / 1000;
      duration.observe({ type: job.type, state: job.status }, Math.max(0, secs));
    }
  };
  const onRetry = () => retries.inc();
  // This process's own jobs only: in a cluster every process counts what it ran, so sums are exact.
  const events = queue.local;
  events.on('progress', onProgress);
  events.on('job', onJob);
  events.on('retry', onRetry);
  return () => {
    events.off('progress', onProgress);
    events.off('job', onJob);
    events.off('retry', onRetry);
  };
}
