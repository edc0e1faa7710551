/**
 * GET /job/{id}/file for a job whose file is in S3: a 302 to a presigned URL (storage.s3.presign), or
 * the object streamed through the API with the same validators and ranges as a file in output_path.
 */
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Job } from '../jobs/types.js';
import { GabeError } from '../service/errors.js';
import { contentDisposition, contentTypeOf } from '../storage/names.js';
import type { ResultStore } from '../storage/results.js';
import {
  describeS3Error,
  isS3NotFound,
  type S3Files,
  type S3ObjectInfo,
  type S3Settings,
} from '../storage/s3.js';
import { S3Results } from '../storage/s3-results.js';
import { planFileResponse, unsatisfiableRange } from './file-ranges.js';

export interface S3FileTarget {
  job: Job;
  location: { bucket: string; key: string };
  results: ResultStore;
  settings: S3Settings;
}

function gone(job: Job, why: string): GabeError {
  return new GabeError('NOT_FOUND', `the file of job ${job.id} ${why}`, { httpStatus: 410 });
}

/** S3 down or refusing: the file is there, ask again shortly (not a 500 of ours). */
function unavailable(job: Job, err: unknown): GabeError {
  return new GabeError('STORAGE', `S3 could not serve the file of job ${job.id}: ${describeS3Error(err)}`, {
    httpStatus: 503,
    retryAfter: 5,
    cause: err,
  });
}

/** The bucket's client when this service stores files in the bucket the result names. */
function filesFor(target: S3FileTarget): S3Files {
  const { results, location, job } = target;
  if (!(results instanceof S3Results)) throw gone(job, 'is in S3, and storage.s3 is not configured');
  // Bucket names stay out of the answer: clients need not learn where the operator keeps files.
  if (results.bucket !== location.bucket) throw gone(job, 'is in an S3 bucket this service does not use');
  return results.files;
}

/** Media headers only once a body follows: an error answer stays plain JSON. */
function setMediaHeaders(
  reply: FastifyReply,
  info: S3ObjectInfo,
  filename: string,
  contentType: string,
): void {
  if (info.lastModified) reply.header('last-modified', info.lastModified.toUTCString());
  reply.header('content-type', contentType);
  reply.header('content-disposition', contentDisposition(filename));
}

export async function sendS3File(
  req: FastifyRequest,
  reply: FastifyReply,
  target: S3FileTarget,
): Promise<FastifyReply> {
  const { job, location, settings } = target;
  const files = filesFor(target);
  // Aborted when the client leaves before the body starts; once it flows, fastify destroys the
  // stream (and with it the S3 socket) on a disconnect.
  const abort = new AbortController();
  reply.raw.once('close', () => abort.abort());
  let info: S3ObjectInfo | null;
  try {
    info = await files.head(location.key, abort.signal);
  } catch (err) {
    throw unavailable(job, err);
  }
  if (!info) throw gone(job, 'is gone from S3');
  const filename = path.posix.basename(location.key);
  const contentType = info.contentType ?? contentTypeOf(filename);
  if (settings.presign) {
    const url = await files.presign(location.key, {
      filename,
      contentType,
      expiresIn: settings.presign_expires_seconds,
    });
    // The URL expires: a cache must not keep the redirect longer than the signature lives.
    reply.header('cache-control', 'private, no-store');
    return reply.code(302).header('location', url).send();
  }
  reply.header('etag', info.etag);
  reply.header('accept-ranges', 'bytes');
  const plan = planFileResponse(req.headers, info.size, info.etag);
  if (plan.status === 304) return reply.code(304).send();
  if (plan.status === 416) {
    reply.header('content-range', `bytes */${info.size}`);
    throw unsatisfiableRange();
  }
  if (req.method === 'HEAD') {
    // fastify answers HEAD by draining the GET's body: from S3 that would fetch the whole object.
    setMediaHeaders(reply, info, filename, contentType);
    const length = plan.status === 206 ? plan.end - plan.start + 1 : info.size;
    if (plan.status === 206)
      reply.code(206).header('content-range', `bytes ${plan.start}-${plan.end}/${info.size}`);
    return reply.header('content-length', length).send(Readable.from([]));
  }
  let object: Awaited<ReturnType<S3Files['get']>>;
  try {
    object = await files.get(location.key, plan.status === 206 ? plan : undefined, abort.signal);
  } catch (err) {
    if (isS3NotFound(err)) throw gone(job, 'is gone from S3');
    throw unavailable(job, err);
  }
  setMediaHeaders(reply, info, filename, contentType);
  reply.header('content-length', object.contentLength);
  if (plan.status === 206) {
    reply.code(206);
    reply.header('content-range', object.contentRange ?? `bytes ${plan.start}-${plan.end}/${info.size}`);
  }
  return reply.send(object.body);
}
