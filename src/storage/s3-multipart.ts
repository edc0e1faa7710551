/**
 * One S3 multipart upload driven part by part (CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, AbortMultipartUpload), for progressive-upload.ts, which decides what goes in
 * each part and when. S3Files.upload (lib-storage) stays the way to upload a finished file.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { S3Files } from './s3.js';

export class S3Multipart {
  private constructor(
    private readonly files: S3Files,
    readonly key: string,
    readonly uploadId: string,
  ) {}

  static async create(
    files: S3Files,
    key: string,
    contentType: string,
    signal: AbortSignal,
  ): Promise<S3Multipart> {
    const out = await files.client.send(
      new CreateMultipartUploadCommand({ Bucket: files.bucket, Key: key, ContentType: contentType }),
      { abortSignal: signal },
    );
    if (!out.UploadId) throw new Error('S3 answered CreateMultipartUpload without an UploadId');
    return new S3Multipart(files, key, out.UploadId);
  }

  /** Sends part `part` (1–10,000; sending one again replaces it) and returns its ETag. */
  async uploadPart(part: number, body: Buffer, signal: AbortSignal): Promise<string> {
    const out = await this.files.client.send(
      new UploadPartCommand({
        Bucket: this.files.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        PartNumber: part,
        Body: body,
        ContentLength: body.length,
      }),
      { abortSignal: signal },
    );
    if (!out.ETag) throw new Error(`S3 answered part ${part} without an ETag`);
    return out.ETag;
  }

  /** Makes the object from `parts`, in order; parts sent and not listed are dropped by S3. */
  async complete(parts: { part: number; etag: string }[], signal: AbortSignal): Promise<string | null> {
    const out = await this.files.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.files.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.part, ETag: p.etag })) },
      }),
      { abortSignal: signal },
    );
    return out.ETag ?? null;
  }

  /** Removes the upload and its parts. No signal: it must go out even when the job's stopped it. */
  async abort(): Promise<void> {
    await this.files.client.send(
      new AbortMultipartUploadCommand({ Bucket: this.files.bucket, Key: this.key, UploadId: this.uploadId }),
    );
  }
}

/** Runs `fn` over `items`, at most `limit` at once; the first failure rejects and the lanes stop taking items. */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let i = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && i < items.length) {
      const item = items[i++]!;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
