import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Scheduler } from '../jobs/scheduler.js';
import type { JobStore } from '../jobs/store.js';
import type { JobRequest, JobType } from '../jobs/types.js';
import { checkUrl } from '../net/http.js';
import { nameFromUrl, sanitizeName } from '../storage/names.js';
import { presentJob } from './present.js';
import { ErrorSchema, errorResponses, HlsDownloadBody, JobSchema, Mp4DownloadBody } from './schemas.js';

export interface DownloadRoutesOptions {
  scheduler: Scheduler;
  store: JobStore;
}

export const downloadRoutes: FastifyPluginAsyncTypebox<DownloadRoutesOptions> = async (
  app,
  { scheduler },
) => {
  const submit = (type: JobType, request: JobRequest, ip: string) => {
    checkUrl(request.url);
    const videoName = request.video_name ? sanitizeName(request.video_name) : nameFromUrl(request.url);
    return presentJob(scheduler.submit({ type, request, clientIp: ip, videoName }));
  };

  app.post(
    '/download/',
    {
      schema: {
        summary: 'Start an HLS (M3U8) download',
        description:
          'Queues a job for a master or media playlist URL. Poll GET /job/{job_id} for progress and the result.',
        tags: ['downloads'],
        body: HlsDownloadBody,
        response: { 200: JobSchema, 400: ErrorSchema, 501: ErrorSchema, ...errorResponses },
      },
    },
    async (req) => submit('hls', req.body, req.ip),
  );

  app.post(
    '/download/mp4',
    {
      schema: {
        summary: 'Start a direct MP4 download',
        description: 'Queues a job that streams the file at `url` to output_path as MP4.',
        tags: ['downloads'],
        body: Mp4DownloadBody,
        response: { 200: JobSchema, 400: ErrorSchema, ...errorResponses },
      },
    },
    async (req) => submit('mp4', req.body, req.ip),
  );
};
