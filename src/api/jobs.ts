import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { JobStore } from '../jobs/job-store.js';
import type { JobQueue } from '../jobs/queue.js';
import { isFinal, type Job } from '../jobs/types.js';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';
import type { ResultStore } from '../storage/results.js';
import { presentJob } from './present.js';
import { errorResponses, JobList, JobParams, JobSchema, ListQuery } from './schemas.js';

export interface JobRoutesOptions {
  queue: JobQueue;
  store: JobStore;
  config: Config;
  results: ResultStore;
}

type App = Parameters<FastifyPluginAsyncTypebox>[0];

interface JobRouteDeps extends JobRoutesOptions {
  /** The caller's job, or JOB_NOT_FOUND. */
  load: (id: string, owner: string | null) => Promise<Job>;
}

export const jobRoutes: FastifyPluginAsyncTypebox<JobRoutesOptions> = async (
  app,
  { queue, store, config, results },
) => {
  // Another key's job answers exactly like a missing one: its existence is not the caller's business.
  const load = async (id: string, owner: string | null) => {
    const job = await store.get(id);
    if (!job || (config.api_keys && job.owner !== owner))
      throw new GabeError('JOB_NOT_FOUND', `job ${id} not found`);
    return job;
  };
  const deps: JobRouteDeps = { queue, store, config, results, load };
  getJob(app, deps);
  deleteJob(app, deps);
  listJobs(app, deps);
};

function getJob(app: App, { queue, load }: JobRouteDeps): void {
  app.get(
    '/job/:job_id',
    {
      schema: {
        summary: 'Get a job',
        description: 'Status, progress (segments, bytes, speed, ETA) and, once COMPLETED, the result.',
        tags: ['jobs'],
        params: JobParams,
        response: { 200: JobSchema, ...errorResponses },
      },
    },
    async (req) => {
      const job = await load(req.params.job_id, req.owner);
      return presentJob(job, job.status === 'PROCESSING' ? queue.liveProgress(job.id) : null);
    },
  );
}

function deleteJob(app: App, { queue, store, results, load }: JobRouteDeps): void {
  app.delete(
    '/job/:job_id',
    {
      schema: {
        summary: 'Cancel or delete a job',
        description:
          'PENDING: leaves the queue. PROCESSING: the transfer is stopped and partial files removed. Both end ' +
          'CANCELLED. A finished job is deleted with its output file and its subtitle sidecars (.vtt). Answers with the final job.',
        tags: ['jobs'],
        params: JobParams,
        response: { 200: JobSchema, ...errorResponses },
      },
    },
    async (req) => {
      const job = await load(req.params.job_id, req.owner);
      if (isFinal(job.status)) {
        await results.remove(job);
        await store.delete(job.id);
        req.log.info({ job_id: job.id }, 'job deleted');
        return presentJob(job);
      }
      const cancelled = await queue.cancel(job.id);
      if (!cancelled) throw new GabeError('JOB_NOT_FOUND', `job ${job.id} not found`);
      return presentJob(cancelled);
    },
  );
}

function listJobs(app: App, { queue, store, config }: JobRouteDeps): void {
  app.get(
    '/jobs',
    {
      schema: {
        summary: 'List jobs, newest first',
        tags: ['jobs'],
        querystring: ListQuery,
        response: { 200: JobList, ...errorResponses },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 50;
      const offset = req.query.offset ?? 0;
      const { jobs, total } = await store.list({
        status: req.query.status,
        limit,
        offset,
        owner: config.api_keys ? (req.owner ?? '') : undefined,
      });
      return {
        jobs: jobs.map((j) => presentJob(j, j.status === 'PROCESSING' ? queue.liveProgress(j.id) : null)),
        total,
        limit,
        offset,
      };
    },
  );
}
