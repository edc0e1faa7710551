import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { JobStore } from '../jobs/job-store.js';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';
import { isInside } from '../storage/paths.js';
import type { ResultStore } from '../storage/results.js';
import { JobParams } from './schemas.js';

export interface FileRoutesOptions {
  store: JobStore;
  config: Config;
  results: ResultStore;
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` (one range; clients asking for several get the whole file). */
export function parseRangeHeader(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'invalid' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.includes(',') ? null : 'invalid';
  const [, a, b] = m;
  if (a === '' && b === '') return 'invalid';
  let start: number;
  let end: number;
  if (a === '') {
    start = Math.max(0, size - Number(b));
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}

/** RFC 6266: a plain ASCII fallback plus the exact UTF-8 name for clients that read filename*. */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

export const fileRoutes: FastifyPluginAsyncTypebox<FileRoutesOptions> = async (app, { store, config }) => {
  app.get(
    '/job/:job_id/file',
    {
      schema: {
        summary: 'Download the finished file',
        description:
          "Serves a COMPLETED job's MP4 with Range (206), ETag/If-None-Match and a Content-Disposition naming the video.",
        tags: ['jobs'],
        params: JobParams,
      },
    },
    async (req, reply) => {
      const job = await store.get(req.params.job_id);
      if (!job || (config.api_keys && job.owner !== req.owner)) {
        throw new GabeError('JOB_NOT_FOUND', `job ${req.params.job_id} not found`);
      }
      const file = job.result?.output_path;
      if (job.status !== 'COMPLETED' || !file) {
        throw new GabeError('NOT_FOUND', `job ${job.id} has no file (it is ${job.status})`, {
          httpStatus: 409,
        });
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
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      // If-Range: a resume against a changed file must get the whole new file, not a spliced one.
      const ifRange = req.headers['if-range'];
      const range = ifRange && ifRange !== etag ? null : parseRangeHeader(req.headers.range, st.size);
      if (range === 'invalid') {
        reply.header('content-range', `bytes */${st.size}`);
        throw new GabeError('BAD_REQUEST', 'the requested range is not satisfiable', { httpStatus: 416 });
      }
      // Media headers only once a file body follows: an error answer stays plain JSON.
      reply.header('last-modified', st.mtime.toUTCString());
      reply.header('content-type', file.endsWith('.m4a') ? 'audio/mp4' : 'video/mp4');
      reply.header('content-disposition', contentDisposition(path.basename(file)));
      if (range) {
        reply.code(206);
        reply.header('content-range', `bytes ${range.start}-${range.end}/${st.size}`);
        reply.header('content-length', range.end - range.start + 1);
        return reply.send(createReadStream(file, { start: range.start, end: range.end }));
      }
      reply.header('content-length', st.size);
      return reply.send(createReadStream(file));
    },
  );
};
