/**
 * The two multipart calls s3rver 3.7 lacks, done on its own store: AbortMultipartUpload
 * (`DELETE /bucket/key?uploadId=…`, which it answers 405) and ListMultipartUploads (`GET /bucket?uploads`,
 * 501). With them an abort really removes the upload's parts and a test can ask S3 itself, through the
 * SDK, whether an upload was left behind. s3rver keeps each started upload as a folder
 * `<bucket>/._S3rver_uploads/<upload id>/` holding a `key` file and its parts; completing one removes it.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  type: string;
  body: unknown;
}

export interface S3rverWithStore {
  middleware: ((ctx: KoaContext, next: () => Promise<void>) => Promise<void>)[];
  store: { getResourcePath(bucket: string, key: string | undefined, resource: string): string };
}

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const xmlEscape = (s: string) =>
  s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!,
  );

function xml(ctx: KoaContext, status: number, body: string): void {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
}

/** Adds the two calls in front of s3rver's router; call before `run()` (Koa composes at listen). */
export function addMultipartCalls(server: S3rverWithStore): void {
  const uploadsOf = (bucket: string) => server.store.getResourcePath(bucket, undefined, 'uploads');
  server.middleware.unshift(async (ctx, next) => {
    const segments = ctx.path.split('/').filter(Boolean);
    const bucket = segments[0] ?? '';
    if (ctx.method === 'DELETE' && segments.length > 1 && typeof ctx.query['uploadId'] === 'string') {
      const dir = path.join(uploadsOf(bucket), path.basename(ctx.query['uploadId']));
      if (!existsSync(dir)) {
        xml(ctx, 404, `<Error><Code>NoSuchUpload</Code><Message>no such upload</Message></Error>`);
        return;
      }
      await rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    if (ctx.method === 'GET' && segments.length === 1 && 'uploads' in ctx.query) {
      const root = uploadsOf(bucket);
      const ids = existsSync(root) ? await readdir(root) : [];
      const uploads: string[] = [];
      for (const id of ids) {
        const key = await readFile(path.join(root, id, 'key'), 'utf8').catch(() => '(no key file)');
        const initiated = (await stat(path.join(root, id))).birthtime.toISOString();
        uploads.push(
          `<Upload><Key>${xmlEscape(key)}</Key><UploadId>${xmlEscape(id)}</UploadId><Initiated>${initiated}</Initiated></Upload>`,
        );
      }
      xml(
        ctx,
        200,
        `<ListMultipartUploadsResult xmlns="${XMLNS}"><Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`,
      );
      return;
    }
    await next();
  });
}
