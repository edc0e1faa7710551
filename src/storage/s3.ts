/**
 * The S3 bucket of config storage.s3, through the AWS SDK v3: streamed multipart uploads, HEAD, ranged
 * GET, presigned GET, DELETE and HeadBucket. Policy (retries, keys, what to delete) lives with the
 * callers (storage/s3-results.ts, api/s3-files.ts); this module only speaks S3.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { isRetryableStatus } from '../net/retry.js';
import type { Config } from '../service/config.js';
import { toGabeError } from '../service/errors.js';
import { contentDisposition } from './names.js';

export type S3Settings = Config['storage']['s3'];

const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 4;
const MAX_PARTS = 10_000;

/**
 * 8 MiB parts, larger only for a file above 80 GiB (a long live recording): S3 takes at most 10,000
 * parts per object.
 */
export function partSizeFor(bytes: number): number {
  return Math.max(PART_SIZE, Math.ceil(bytes / MAX_PARTS));
}

export interface S3ObjectInfo {
  size: number;
  etag: string;
  lastModified: Date | null;
  contentType: string | null;
}

export interface S3ObjectBody {
  body: Readable;
  /** The whole object's size. */
  size: number;
  /** Bytes in `body`. */
  contentLength: number;
  /** `bytes a-b/size` for a ranged GET. */
  contentRange?: string;
}

/** The HTTP status behind an SDK error (S3ServiceException's $metadata), if S3 answered at all. */
export function s3Status(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

export function isS3NotFound(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name;
  return s3Status(err) === 404 || name === 'NotFound' || name === 'NoSuchKey';
}

/**
 * Worth another try: S3 throttling or failing (the statuses net/retry.ts retries for origins) or not
 * reachable (refused, reset, timed out). A 403 or a missing bucket will say the same next time.
 */
export function isRetryableS3Error(err: unknown): boolean {
  const status = s3Status(err);
  if (status !== undefined) return isRetryableStatus(status);
  if ((err as { name?: string } | null)?.name === 'TimeoutError') return true;
  return toGabeError(err).retryable;
}

/** What S3 (or the network) said, for messages: "NoSuchBucket (404): …", "connect ECONNREFUSED …". */
export function describeS3Error(err: unknown): string {
  const e = err as { name?: string; message?: string } | null;
  const status = s3Status(err);
  const message = e?.message || e?.name || String(err);
  return status === undefined ? message : `${e?.name ?? 'Error'} (${status}): ${message}`;
}

export class S3Files {
  readonly client: S3Client;
  readonly bucket: string;

  constructor(settings: S3Settings) {
    if (!settings.bucket) throw new Error('S3Files needs storage.s3.bucket');
    this.bucket = settings.bucket;
    // The SDK warns on every Node below 22 that its releases after January 2027 will need Node 22; the
    // pinned release runs on Node 20. An operator who wants the warning sets the variable to false.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    this.client = new S3Client({
      region: settings.region,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      forcePathStyle: settings.force_path_style,
      // Without keys in the config the SDK's default chain applies (AWS_* variables, profile, role).
      ...(settings.access_key_id && settings.secret_access_key
        ? {
            credentials: {
              accessKeyId: settings.access_key_id,
              secretAccessKey: settings.secret_access_key,
            },
          }
        : {}),
      // SDK 3.729+ adds CRC32 checksums (aws-chunked bodies with trailers) to every upload by default,
      // which many S3-compatible servers (older MinIO, Ceph, R2, s3rver) refuse or store garbled;
      // checksums only where S3 requires them keeps uploads working everywhere.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // A dead endpoint must fail fast; a body idle for two minutes (S3 or our reader stuck) is dropped.
      requestHandler: { connectionTimeout: 5_000, socketTimeout: 120_000 },
    });
  }

  /**
   * Streams a local file to `key` (multipart above 8 MiB, 4 parts in flight, so memory stays at about
   * 32 MiB up to 80 GiB). `signal` aborts the upload (and its multipart upload on S3).
   */
  async upload(
    localPath: string,
    key: string,
    contentType: string,
    signal: AbortSignal,
  ): Promise<{ bytes: number; etag: string | null }> {
    signal.throwIfAborted();
    const { size } = await stat(localPath);
    const body = createReadStream(localPath);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body, ContentType: contentType, ContentLength: size },
      partSize: partSizeFor(size),
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort().catch(() => {});
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const out = await upload.done();
      return { bytes: size, etag: out.ETag ?? null };
    } finally {
      signal.removeEventListener('abort', onAbort);
      body.destroy();
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<S3ObjectInfo | null> {
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: key }),
        signal ? { abortSignal: signal } : {},
      );
      return {
        size: out.ContentLength ?? 0,
        etag: out.ETag ?? '',
        lastModified: out.LastModified ?? null,
        contentType: out.ContentType ?? null,
      };
    } catch (err) {
      if (isS3NotFound(err)) return null;
      throw err;
    }
  }

  /** The object, or `range` of it (inclusive bounds, like HTTP). Throws the SDK's NoSuchKey when it is gone. */
  async get(
    key: string,
    range?: { start: number; end: number },
    signal?: AbortSignal,
  ): Promise<S3ObjectBody> {
    const out = await this.client.send(
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
      }),
      signal ? { abortSignal: signal } : {},
    );
    const body = out.Body as Readable;
    const contentLength = out.ContentLength ?? 0;
    const total = out.ContentRange ? Number(/\/(\d+)$/.exec(out.ContentRange)?.[1]) : Number.NaN;
    return {
      body,
      size: Number.isFinite(total) ? total : contentLength,
      contentLength,
      ...(out.ContentRange ? { contentRange: out.ContentRange } : {}),
    };
  }

  /** A GET URL anyone can use until it expires, answering with the file's name and media type. */
  presign(
    key: string,
    options: { filename: string; contentType: string; expiresIn: number },
  ): Promise<string> {
    return getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ResponseContentDisposition: contentDisposition(options.filename),
        ResponseContentType: options.contentType,
      }),
      { expiresIn: options.expiresIn },
    );
  }

  /** Deleting an object that is not there succeeds (S3 answers 204 either way). */
  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async checkBucket(signal?: AbortSignal): Promise<void> {
    await this.client.send(
      new HeadBucketCommand({ Bucket: this.bucket }),
      signal ? { abortSignal: signal } : {},
    );
  }

  close(): void {
    this.client.destroy();
  }
}
