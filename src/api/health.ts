import { existsSync } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { JobStore } from '../jobs/job-store.js';
import type { JobQueue } from '../jobs/queue.js';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import type { Config } from '../service/config.js';
import { freeBytes } from '../storage/paths.js';
import type { ResultStore } from '../storage/results.js';
import { VERSION } from '../version.js';
import { ErrorSchema, HealthSchema } from './schemas.js';

/** Below this, downloads will soon fail with GABE_ERR_DISK_FULL: report unhealthy before they do. */
const MIN_FREE_BYTES = 100 * 1024 * 1024;

/** A Redis that does not answer must make /health say so, not hang it (ioredis queues commands while it reconnects). */
const CHECK_DEADLINE_MS = 3000;

async function withDeadline<T>(work: T | Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${CHECK_DEADLINE_MS} ms`)),
      CHECK_DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface HealthRoutesOptions {
  config: Config;
  store: JobStore;
  /** What the store is, for the answer: the SQLite file, or the Redis URL without its password. */
  storeInfo: { kind: 'sqlite' | 'redis'; path: string };
  queue: JobQueue;
  results: ResultStore;
  ffmpeg: FfmpegTools;
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, opts) => {
  app.get(
    '/health',
    {
      schema: {
        summary:
          'Health: ffmpeg found, job store writable (SQLite or Redis), free disk, result storage reachable',
        description: '200 when every check passes, 503 otherwise; the body says which check failed.',
        tags: ['service'],
        response: { 200: HealthSchema, 503: HealthSchema, 500: ErrorSchema },
      },
    },
    async (_req, reply) => {
      const { config, store, storeInfo, queue, results, ffmpeg } = opts;
      const ffmpegOk = existsSync(ffmpeg.ffmpeg) && existsSync(ffmpeg.ffprobe);
      let dbError: string | null = null;
      let counts: Awaited<ReturnType<JobStore['countByStatus']>> | null = null;
      try {
        await withDeadline(store.checkWritable(), 'the job store');
        counts = await withDeadline(store.countByStatus(), 'the job store');
      } catch (err) {
        dbError = (err as Error).message;
      }
      const [free, storage] = await Promise.all([freeBytes(config.output_path), results.check()]);
      const diskOk = free !== null && free >= MIN_FREE_BYTES;
      const ok = ffmpegOk && dbError === null && diskOk && storage.ok;
      reply.code(ok ? 200 : 503);
      return {
        status: ok ? ('ok' as const) : ('error' as const),
        version: VERSION,
        ffmpeg: { ok: ffmpegOk, path: ffmpeg.ffmpeg, version: ffmpeg.version, source: ffmpeg.source },
        database: {
          ok: dbError === null,
          kind: storeInfo.kind,
          path: storeInfo.path,
          ...(dbError ? { error: dbError } : {}),
        },
        disk: { ok: diskOk, path: config.output_path, free_bytes: free, min_free_bytes: MIN_FREE_BYTES },
        storage: storage,
        queue: {
          pending: counts?.PENDING ?? 0,
          processing: counts?.PROCESSING ?? 0,
          accepting: queue.isAccepting,
        },
      };
    },
  );
};
