import { existsSync } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Scheduler } from '../jobs/scheduler.js';
import type { JobStore } from '../jobs/job-store.js';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import type { Config } from '../service/config.js';
import { freeBytes } from '../storage/paths.js';
import { VERSION } from '../version.js';
import { ErrorSchema, HealthSchema } from './schemas.js';

/** Below this, downloads will soon fail with GABE_ERR_DISK_FULL: report unhealthy before they do. */
const MIN_FREE_BYTES = 100 * 1024 * 1024;

export interface HealthRoutesOptions {
  config: Config;
  store: JobStore;
  scheduler: Scheduler;
  ffmpeg: FfmpegTools;
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, opts) => {
  app.get(
    '/health',
    {
      schema: {
        summary: 'Health: ffmpeg found, database writable, free disk in output_path',
        description: '200 when every check passes, 503 otherwise; the body says which check failed.',
        tags: ['service'],
        response: { 200: HealthSchema, 503: HealthSchema, 500: ErrorSchema },
      },
    },
    async (_req, reply) => {
      const { config, store, scheduler, ffmpeg } = opts;
      const ffmpegOk = existsSync(ffmpeg.ffmpeg) && existsSync(ffmpeg.ffprobe);
      let dbError: string | null = null;
      try {
        store.checkWritable();
      } catch (err) {
        dbError = (err as Error).message;
      }
      const free = await freeBytes(config.output_path);
      const diskOk = free !== null && free >= MIN_FREE_BYTES;
      const counts = store.countByStatus();
      const ok = ffmpegOk && dbError === null && diskOk;
      reply.code(ok ? 200 : 503);
      return {
        status: ok ? ('ok' as const) : ('error' as const),
        version: VERSION,
        ffmpeg: { ok: ffmpegOk, path: ffmpeg.ffmpeg, version: ffmpeg.version, source: ffmpeg.source },
        database: {
          ok: dbError === null,
          path: config.database_path,
          ...(dbError ? { error: dbError } : {}),
        },
        disk: { ok: diskOk, path: config.output_path, free_bytes: free, min_free_bytes: MIN_FREE_BYTES },
        queue: { pending: counts.PENDING, processing: counts.PROCESSING, accepting: scheduler.isAccepting },
      };
    },
  );
};
