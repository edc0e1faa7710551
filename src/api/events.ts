import { fastifySSE } from '@fastify/sse';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { JobStore } from '../jobs/job-store.js';
import type { JobQueue } from '../jobs/queue.js';
import { isFinal, type Job, type JobProgress } from '../jobs/types.js';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';
import { presentJob } from './present.js';
import { JobParams, type JobResponse } from './schemas.js';
import { StreamSlots } from './stream-slots.js';

export interface EventRoutesOptions {
  queue: JobQueue;
  store: JobStore;
  config: Config;
}

type Listener = (job: JobResponse, owner: string | null) => void;

/**
 * One subscription to the scheduler for all SSE clients: a state event for every transition, and
 * progress at most every 250 ms per job (the scheduler may report more often).
 */
class JobEventHub {
  private readonly listeners = new Set<Listener>();
  private readonly lastProgress = new Map<string, number>();

  constructor(
    private readonly queue: JobQueue,
    private readonly store: JobStore,
  ) {
    queue.feed.on('job', this.onJob);
    queue.feed.on('progress', this.onProgress);
  }

  private readonly onJob = (job: Job) => {
    if (isFinal(job.status)) this.lastProgress.delete(job.id);
    this.broadcast(presentJob(job), job.owner);
  };

  private readonly onProgress = (id: string, progress: JobProgress) => {
    const now = Date.now();
    if (now - (this.lastProgress.get(id) ?? 0) < 250) return;
    this.lastProgress.set(id, now);
    void this.broadcastProgress(id, progress);
  };

  private async broadcastProgress(id: string, progress: JobProgress): Promise<void> {
    try {
      const job = await this.store.get(id);
      if (job?.status === 'PROCESSING') this.broadcast(presentJob(job, progress), job.owner);
    } catch {
      // The store is briefly away (Redis restarting): the next progress event tries again.
    }
  }

  private broadcast(job: JobResponse, owner: string | null): void {
    for (const l of this.listeners) l(job, owner);
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  close(): void {
    this.queue.feed.off('job', this.onJob);
    this.queue.feed.off('progress', this.onProgress);
    this.listeners.clear();
  }
}

type App = Parameters<FastifyPluginAsyncTypebox>[0];

/** What both event routes share: the hub, the stream slots and who may see which job. */
interface EventStreams {
  hub: JobEventHub;
  store: JobStore;
  /** Takes a stream slot for the caller, given back when the connection closes, however it ends. */
  takeSlot: (req: FastifyRequest, reply: FastifyReply) => void;
  visible: (owner: string | null, caller: string | null) => boolean;
  /** The job as the API shows it, with live progress while it runs. */
  live: (job: Job) => JobResponse;
  /** The caller's jobs only (undefined: everyone's). */
  ownerFilter: (caller: string | null) => string | undefined;
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, opts) => {
  const { queue, store, config } = opts;
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });
  const hub = new JobEventHub(queue, store);
  app.addHook('onClose', async () => hub.close());
  const slots = new StreamSlots(config.max_event_streams, config.max_event_streams_per_client);
  const streams: EventStreams = {
    hub,
    store,
    takeSlot: (req, reply) => {
      const release = slots.acquire(req.owner ?? req.ip);
      reply.raw.once('close', release);
    },
    visible: (owner, caller) => !config.api_keys || owner === caller,
    live: (job) => presentJob(job, job.status === 'PROCESSING' ? queue.liveProgress(job.id) : null),
    ownerFilter: (caller) => (config.api_keys ? (caller ?? '') : undefined),
  };
  allJobsEvents(app, streams);
  oneJobEvents(app, streams);
};

function allJobsEvents(app: App, { hub, store, takeSlot, visible, live, ownerFilter }: EventStreams): void {
  app.get(
    '/events',
    {
      sse: 'only',
      schema: {
        summary: 'Live events for all jobs (Server-Sent Events)',
        description:
          'Event `job` with the job JSON on every state change and on progress (≤ 4/s per job). ' +
          'On connect, the current state of every PENDING or PROCESSING job is sent first.',
        tags: ['jobs'],
      },
    },
    async (req, reply) => {
      takeSlot(req, reply);
      reply.sse.keepAlive();
      // @fastify/sse commits the headers on the first event only; with no job to replay the handler
      // would return first and Fastify would answer an empty text/plain 200, which EventSource rejects.
      // Node holds written headers back until the first body write: flush them so the client sees the
      // stream open (EventSource's `open`) before any job moves.
      reply.sse.sendHeaders();
      reply.raw.flushHeaders();
      const unsubscribe = hub.subscribe((job, owner) => {
        if (visible(owner, req.owner) && reply.sse.isConnected)
          void reply.sse.send({ event: 'job', data: job });
      });
      reply.sse.onClose(unsubscribe);
      for (const status of ['PROCESSING', 'PENDING'] as const) {
        const { jobs } = await store.list({ status, limit: 500, offset: 0, owner: ownerFilter(req.owner) });
        for (const job of jobs) await reply.sse.send({ event: 'job', data: live(job) });
      }
    },
  );
}

function oneJobEvents(app: App, { hub, store, takeSlot, visible, live }: EventStreams): void {
  app.get(
    '/job/:job_id/events',
    {
      sse: 'only',
      schema: {
        summary: 'Live events for one job (Server-Sent Events)',
        description:
          'Sends the current state first, then a `job` event on every change and on progress (≤ 4/s); the ' +
          'stream closes after the final state.',
        tags: ['jobs'],
        params: JobParams,
      },
    },
    async (req, reply) => {
      const job = await store.get(req.params.job_id);
      if (!job || !visible(job.owner, req.owner))
        throw new GabeError('JOB_NOT_FOUND', `job ${req.params.job_id} not found`);
      takeSlot(req, reply);
      if (isFinal(job.status)) {
        await reply.sse.send({ event: 'job', data: presentJob(job) });
        return;
      }
      reply.sse.keepAlive();
      let closed = false;
      const unsubscribe = hub.subscribe((update) => {
        if (update.job_id !== job.id || closed || !reply.sse.isConnected) return;
        void reply.sse.send({ event: 'job', data: update }).then(() => {
          if (isFinal(update.status) && !closed) {
            closed = true;
            unsubscribe();
            reply.sse.close();
          }
        });
      });
      reply.sse.onClose(unsubscribe);
      // Subscribed first, then the current state: a transition in between is sent, never lost.
      const current = await store.get(job.id);
      if (current) await reply.sse.send({ event: 'job', data: live(current) });
      if (current && isFinal(current.status) && !closed) {
        closed = true;
        unsubscribe();
        reply.sse.close();
      }
    },
  );
}
