import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { JobStore } from '../jobs/job-store.js';
import type { Job } from '../jobs/types.js';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';
import { contentDisposition, contentTypeOf } from '../storage/names.js';
import { isInside } from '../storage/paths.js';
import type { ResultStore } from '../storage/results.js';
import { parseS3Url } from '../storage/s3-url.js';
import { planFileResponse, unsatisfiableRange } from './file-ranges.js';
import { JobParams } from './schemas.js';

export interface FileRoutesOptions {
  store: JobStore;
  config: Config;
  /** Where finished files live: an `s3://` result is served from (or redirected to) the bucket. */
  results: ResultStore;
}

export const fileRoutes: FastifyPluginAsyncTypebox<FileRoutesOptions> = async (
  app,
  { store, config, results },
) => {
  app.get(
    '/job/:job_id/file',
    {
      schema: {
        summary: 'Download the finished file',
        description:
          "Serves a COMPLETED job's MP4 with Range (206), ETag/If-None-Match and a Content-Disposition naming the video. With files in S3 and storage.s3.presign, answers 302 to a presigned S3 URL instead.",
        tags: ['jobs'],
        params: JobParams,
      },
    },
    async (req, reply) => {
      const job = await ownJob(req.params.job_id, req.owner);
      const file = job.result?.output_path;
      if (job.status !== 'COMPLETED' || !file) {
        throw new GabeError('NOT_FOUND', `job ${job.id} has no file (it is ${job.status})`, {
          httpStatus: 409,
        });
      }
      return sendFile(req, reply, job, file);
    },
  );

  app.get(
    '/job/:job_id/thumbnail',
    {
      schema: {
        summary: "The job's poster frame",
        description:
          'Serves the JPEG poster frame of a COMPLETED job submitted with thumbnail: true (404 when it has none), like /job/{id}/file.',
        tags: ['jobs'],
        params: JobParams,
      },
    },
    async (req, reply) => {
      const job = await ownJob(req.params.job_id, req.owner);
      const file = job.status === 'COMPLETED' ? job.result?.thumbnail_path : undefined;
      if (!file) throw new GabeError('NOT_FOUND', `job ${job.id} has no poster frame`);
      return sendFile(req, reply, job, file);
    },
  );

  /** A job that exists and, with API keys, belongs to the caller; else 404 as if it did not exist. */
  async function ownJob(id: string, owner: string | null | undefined): Promise<Job> {
    const job = await store.get(id);
    if (!job || (config.api_keys && job.owner !== owner)) {
      throw new GabeError('JOB_NOT_FOUND', `job ${id} not found`);
    }
    return job;
  }

  /** One of the job's files, from output_path or S3, with Range, ETag and its media type. */
  async function sendFile(req: FastifyRequest, reply: FastifyReply, job: Job, file: string) {
    const s3 = parseS3Url(file);
    if (s3) {
      // Loaded on first use: the AWS SDK is large, and a service without S3 never needs it.
      const { sendS3File } = await import('./s3-files.js');
      return sendS3File(req, reply, { job, location: s3, results, settings: config.storage.s3 });
    }
    if (!isInside(config.output_path, file))
      throw new GabeError('NOT_FOUND', 'the file is not in output_path');
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(file);
    } catch {
      throw new GabeError('NOT_FOUND', `the file of job ${job.id} is gone from disk`, { httpStatus: 410 });
    }
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    reply.header('etag', etag);
    reply.header('accept-ranges', 'bytes');
    const plan = planFileResponse(req.headers, st.size, etag);
    if (plan.status === 304) return reply.code(304).send();
    if (plan.status === 416) {
      reply.header('content-range', `bytes */${st.size}`);
      throw unsatisfiableRange();
    }
    // Media headers only once a file body follows: an error answer stays plain JSON.
    reply.header('last-modified', st.mtime.toUTCString());
    reply.header('content-type', contentTypeOf(file));
    reply.header('content-disposition', contentDisposition(path.basename(file)));
    if (plan.status === 206) {
      reply.code(206);
      reply.header('content-range', `bytes ${plan.start}-${plan.end}/${st.size}`);
      reply.header('content-length', plan.end - plan.start + 1);
      return reply.send(createReadStream(file, { start: plan.start, end: plan.end }));
    }
    reply.header('content-length', st.size);
    return reply.send(createReadStream(file));
  }
};
