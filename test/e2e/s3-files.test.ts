/**
 * GET /job/{id}/file for a COMPLETED job whose file is in S3 (s3rver through the AWS SDK): streamed
 * with the local file's HTTP semantics, or a 302 to a presigned URL; over real sockets.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError } from 'fastify';
import { pino } from 'pino';
import { fileRoutes } from '../../src/api/files.js';
import { SqliteJobStore } from '../../src/jobs/store.js';
import type { JobResult } from '../../src/jobs/types.js';
import { loadConfig } from '../../src/service/config.js';
import { GabeError, isGabeError } from '../../src/service/errors.js';
import { LocalResults } from '../../src/storage/local-results.js';
import type { ResultStore } from '../../src/storage/results.js';
import { S3Results } from '../../src/storage/s3-results.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const LIMITS = { maxQueueSize: 100, maxJobsPerIp: 0 };

describe('GET /job/{id}/file from S3', () => {
  let s3: TestS3Server;
  let dir: string;
  let store: SqliteJobStore;
  const closers: (() => Promise<unknown>)[] = [];

  /** The files route alone, with app.ts's error shape, listening on 127.0.0.1:0. */
  async function startApp(options: { presign?: boolean; results?: ResultStore } = {}): Promise<string> {
    const config = loadConfig({
      file: path.join(dir, 'config.json'),
      env: {},
      overrides: {
        output_path: path.join(dir, 'out'),
        storage: { s3: { ...s3.config, presign: options.presign ?? false, presign_expires_seconds: 60 } },
      },
    });
    const results = options.results ?? new S3Results(config.storage.s3, config.output_path);
    // fetch's pool may leave a connection that never sends a request, which close() would otherwise
    // wait on until the server's headers timeout (about 70 s at the end of this file).
    const app = Fastify({ forceCloseConnections: true })
      .setValidatorCompiler(TypeBoxValidatorCompiler)
      .withTypeProvider<TypeBoxTypeProvider>();
    app.setErrorHandler((error: FastifyError, _req, reply) => {
      const err = isGabeError(error) ? error : new GabeError('INTERNAL', error.message);
      if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
      return reply.code(err.httpStatus).send({ detail: err.message, code: err.code });
    });
    await app.register(fileRoutes, { store, config, results });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    closers.push(
      () => app.close(),
      () => results.close(),
    );
    return url;
  }

  /** A COMPLETED job whose file was published to S3 by the real S3Results. */
  async function completedJob(
    name: string,
    bytes: number,
  ): Promise<{ id: string; data: Buffer; result: JobResult }> {
    const data = randomBytes(bytes);
    const file = path.join(dir, 'out', name);
    writeFileSync(file, data);
    const job = store.admit(
      { type: 'mp4', request: { url: 'https://example.com/v.mp4' }, clientIp: '10.0.0.1', videoName: 'v' },
      LIMITS,
    );
    store.transition(job.id, 'PROCESSING');
    const results = new S3Results(s3.config, path.join(dir, 'out'));
    const local: JobResult = {
      status: 'completed',
      output_path: file,
      resolution: null,
      video_name: name,
      original_url: 'https://example.com/v.mp4',
      file_size_mb: bytes / MiB,
      file_size_bytes: bytes,
      duration_seconds: null,
      segment_count: null,
      container: 'mp4',
    };
    const result = await results.publish(
      job.id,
      local,
      new AbortController().signal,
      pino({ level: 'silent' }),
    );
    await results.close();
    assert.ok(store.transition(job.id, 'COMPLETED', { result }));
    return { id: job.id, data, result };
  }

  const keyOf = (result: JobResult) => result.output_path.slice(`s3://${s3.bucket}/`.length);

  let base: string;
  let video: Awaited<ReturnType<typeof completedJob>>;

  before(async () => {
    s3 = await startS3Server();
    dir = tempDir('gabe-s3-files-');
    mkdirSync(path.join(dir, 'out'));
    store = new SqliteJobStore(path.join(dir, 'jobs.db'));
    base = await startApp();
    video = await completedJob('clip ünï.mp4', 3 * MiB + 123);
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    store.close();
    await s3.close();
  });

  it('streams the whole object byte-identical with its ETag, length, type and name', async () => {
    const res = await fetch(`${base}/job/${video.id}/file`);
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.equals(video.data));
    assert.equal(res.headers.get('content-length'), String(video.data.length));
    assert.equal(res.headers.get('content-type'), 'video/mp4');
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.match(res.headers.get('etag') ?? '', /^"[0-9a-f-]+"$/);
    assert.equal(
      res.headers.get('content-disposition'),
      `attachment; filename="clip _n_.mp4"; filename*=UTF-8''${encodeURIComponent('clip ünï.mp4')}`,
    );
    assert.ok(res.headers.get('last-modified'));
  });

  it('answers a Range with 206, the right bytes and Content-Range; a suffix range too', async () => {
    const size = video.data.length;
    const res = await fetch(`${base}/job/${video.id}/file`, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 1000-1999/${size}`);
    assert.equal(res.headers.get('content-length'), '1000');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(video.data.subarray(1000, 2000)));
    const tail = await fetch(`${base}/job/${video.id}/file`, { headers: { range: 'bytes=-500' } });
    assert.equal(tail.status, 206);
    assert.equal(tail.headers.get('content-range'), `bytes ${size - 500}-${size - 1}/${size}`);
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(video.data.subarray(size - 500)));
  });

  it('answers 304 to If-None-Match with the ETag, and the whole file to a stale If-Range', async () => {
    const etag = (await fetch(`${base}/job/${video.id}/file`, { method: 'HEAD' })).headers.get('etag')!;
    const cached = await fetch(`${base}/job/${video.id}/file`, { headers: { 'if-none-match': etag } });
    assert.equal(cached.status, 304);
    assert.equal((await cached.arrayBuffer()).byteLength, 0);
    const stale = await fetch(`${base}/job/${video.id}/file`, {
      headers: { range: 'bytes=0-9', 'if-range': '"another-version"' },
    });
    assert.equal(stale.status, 200);
    assert.equal((await stale.arrayBuffer()).byteLength, video.data.length);
    const fresh = await fetch(`${base}/job/${video.id}/file`, {
      headers: { range: 'bytes=0-9', 'if-range': etag },
    });
    assert.equal(fresh.status, 206);
  });

  it('answers HEAD with the GET headers without fetching the object from S3', async () => {
    const gets = () => s3.requests.filter((r) => r.startsWith('GET ')).length;
    const before = gets();
    const res = await fetch(`${base}/job/${video.id}/file`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(video.data.length));
    assert.equal(res.headers.get('content-type'), 'video/mp4');
    const part = await fetch(`${base}/job/${video.id}/file`, {
      method: 'HEAD',
      headers: { range: 'bytes=0-99' },
    });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-length'), '100');
    assert.equal(part.headers.get('content-range'), `bytes 0-99/${video.data.length}`);
    assert.equal(gets(), before, 'HEAD only: no GetObject');
  });

  it('answers 416 with bytes */size to a range past the end', async () => {
    const res = await fetch(`${base}/job/${video.id}/file`, {
      headers: { range: `bytes=${video.data.length}-` },
    });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get('content-range'), `bytes */${video.data.length}`);
    assert.equal(((await res.json()) as { code: string }).code, 'GABE_ERR_BAD_REQUEST');
  });

  it('with presign, answers 302 to a URL that serves the bytes with the name and type', async () => {
    const presigned = await startApp({ presign: true });
    const res = await fetch(`${presigned}/job/${video.id}/file`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('cache-control'), 'private, no-store');
    const location = res.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/`), location);
    assert.match(location, /X-Amz-Expires=60/);
    const direct = await fetch(location);
    assert.equal(direct.status, 200);
    assert.ok(Buffer.from(await direct.arrayBuffer()).equals(video.data));
    assert.equal(direct.headers.get('content-type'), 'video/mp4');
    assert.match(
      direct.headers.get('content-disposition') ?? '',
      /filename\*=UTF-8''clip%20%C3%BCn%C3%AF\.mp4/,
    );
  });

  it('answers 410 GABE_ERR_NOT_FOUND once the object is gone, streamed or presigned', async () => {
    const doomed = await completedJob('doomed.mp4', 1000);
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: keyOf(doomed.result) }));
    for (const url of [base, await startApp({ presign: true })]) {
      const res = await fetch(`${url}/job/${doomed.id}/file`, { redirect: 'manual' });
      assert.equal(res.status, 410, url);
      assert.equal(((await res.json()) as { code: string }).code, 'GABE_ERR_NOT_FOUND');
    }
  });

  it('answers 503 GABE_ERR_STORAGE with Retry-After while S3 is down', async () => {
    await s3.stop();
    try {
      const res = await fetch(`${base}/job/${video.id}/file`);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '5');
      const body = (await res.json()) as { code: string; detail: string };
      assert.equal(body.code, 'GABE_ERR_STORAGE');
      assert.match(body.detail, /S3 could not serve the file of job .*ECONNREFUSED/);
    } finally {
      await s3.start();
    }
    assert.equal((await fetch(`${base}/job/${video.id}/file`)).status, 200);
  });

  it('answers 410 for an s3:// result this service cannot read (no S3 configured)', async () => {
    const local = await startApp({ results: new LocalResults(path.join(dir, 'out')) });
    const res = await fetch(`${local}/job/${video.id}/file`);
    assert.equal(res.status, 410);
    assert.match(((await res.json()) as { detail: string }).detail, /storage\.s3 is not configured/);
  });

  it('releases the S3 stream when the client disconnects mid-body', async () => {
    const big = await completedJob('big.mp4', 20 * MiB);
    const before = s3.inFlight();
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${base}/job/${big.id}/file`, (res) => {
        assert.equal(res.statusCode, 200);
        res.once('data', () => {
          // One chunk in, then the client goes away with some 20 MiB unread.
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    });
    const deadline = Date.now() + 5_000;
    while (s3.inFlight() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s3.inFlight(), before, 'the GET on S3 was closed, not left paused');
  });
});
