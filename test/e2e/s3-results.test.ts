/**
 * Finished files published to a real S3 server (s3rver through the AWS SDK): multipart uploads,
 * sidecars, retries while S3 is down, GABE_ERR_UPLOAD, deletion and the health check.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import type { Job, JobResult } from '../../src/jobs/types.js';
import { isGabeError } from '../../src/service/errors.js';
import { S3Results } from '../../src/storage/s3-results.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const FAST = { baseDelayMs: 100, maxDelayMs: 200 };

/** A pino logger whose lines the test reads back. */
function capturedLog() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  return {
    log,
    retries: () => lines.filter((l) => l.msg === 'upload to S3 failed; trying again'),
    uploads: () => lines.filter((l) => l.msg === 'uploaded to S3'),
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function writeMedia(dir: string, name: string, bytes: number): { file: string; data: Buffer } {
  const file = path.join(dir, name);
  const data = randomBytes(bytes);
  writeFileSync(file, data);
  return { file, data };
}

function resultFor(file: string, subtitles: JobResult['subtitles'] = undefined): JobResult {
  return {
    status: 'completed',
    output_path: file,
    resolution: null,
    video_name: path.basename(file, '.mp4'),
    original_url: 'https://example.com/v.m3u8',
    file_size_mb: 0,
    file_size_bytes: 0,
    duration_seconds: null,
    segment_count: null,
    container: 'mp4',
    ...(subtitles ? { subtitles } : {}),
  };
}

const jobWith = (id: string, result: JobResult) => ({ id, result }) as Job;

describe('S3 result store', () => {
  let s3: TestS3Server;
  let out: string;
  const stores: S3Results[] = [];
  const store = (settings: Partial<TestS3Server['config']> = {}, options = FAST) => {
    const s = new S3Results({ ...s3.config, ...settings }, out, options);
    stores.push(s);
    return s;
  };

  async function readObject(url: string): Promise<{ data: Buffer; contentType?: string | undefined }> {
    const key = url.slice(`s3://${s3.bucket}/`.length);
    const obj = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return { data: Buffer.from(await obj.Body!.transformToByteArray()), contentType: obj.ContentType };
  }

  async function headStatus(url: string): Promise<number> {
    const key = url.slice(`s3://${s3.bucket}/`.length);
    try {
      await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      return 200;
    } catch (err) {
      return (err as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode;
    }
  }

  before(async () => {
    s3 = await startS3Server();
    out = tempDir('gabe-s3-out-');
  });
  after(async () => {
    for (const s of stores) await s.close();
    await s3.close();
  });

  it('uploads a 20 MiB file in several parts, byte-identical, and removes the local copy', async () => {
    const { file, data } = writeMedia(out, 'big video.mp4', 20 * MiB);
    const jobId = randomUUID();
    const { log, retries, uploads } = capturedLog();
    const published = await store().publish(jobId, resultFor(file), new AbortController().signal, log);
    assert.equal(published.output_path, `s3://${s3.bucket}/gabe/${jobId}/big video.mp4`);
    assert.equal(existsSync(file), false, 'the local copy is removed once uploaded');
    const back = await readObject(published.output_path);
    assert.equal(back.data.length, data.length);
    assert.equal(sha(back.data), sha(data));
    assert.equal(back.contentType, 'video/mp4');
    // 20 MiB in 8 MiB parts: three UploadPart requests of this key.
    const parts = s3.requests.filter(
      (r) => r.startsWith(`PUT /${s3.bucket}/gabe/${jobId}/`) && /partNumber=/.test(r),
    );
    assert.equal(parts.length, 3);
    assert.equal(retries().length, 0);
    assert.equal(uploads().length, 1);
    assert.equal(uploads()[0]?.['bytes'], 20 * MiB);
    assert.equal(typeof uploads()[0]?.['seconds'], 'number');
  });

  it('uploads the .vtt sidecars beside the video as text/vtt and points the result at them', async () => {
    const dir = tempDir('gabe-s3-out-');
    const video = writeMedia(dir, 'film.mp4', 64 * 1024);
    const en = path.join(dir, 'film.en.vtt');
    writeFileSync(en, 'WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n');
    const jobId = randomUUID();
    const sub = { language: 'en', name: 'English', path: en, cues: 1 };
    const published = await store().publish(
      jobId,
      resultFor(video.file, [sub]),
      new AbortController().signal,
      capturedLog().log,
    );
    const subUrl = published.subtitles?.[0]?.path ?? '';
    assert.equal(subUrl, `s3://${s3.bucket}/gabe/${jobId}/film.en.vtt`);
    assert.deepEqual({ ...published.subtitles?.[0], path: en }, sub, 'the other subtitle fields are kept');
    const vtt = await readObject(subUrl);
    assert.equal(vtt.contentType, 'text/vtt');
    assert.match(vtt.data.toString(), /hello/);
    assert.equal(sha((await readObject(published.output_path)).data), sha(video.data));
    assert.equal(existsSync(en), false);
    assert.equal(existsSync(video.file), false);
  });

  it('uploads the poster frame beside the video as image/jpeg, points the result at it, and removes it with the job', async () => {
    const dir = tempDir('gabe-s3-out-');
    const video = writeMedia(dir, 'clip.mp4', 64 * 1024);
    const poster = path.join(dir, 'clip.jpg');
    writeFileSync(poster, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]));
    const jobId = randomUUID();
    const s = store();
    const published = await s.publish(
      jobId,
      { ...resultFor(video.file), thumbnail_path: poster },
      new AbortController().signal,
      capturedLog().log,
    );
    assert.equal(published.thumbnail_path, `s3://${s3.bucket}/gabe/${jobId}/clip.jpg`);
    const jpg = await readObject(published.thumbnail_path!);
    assert.equal(jpg.contentType, 'image/jpeg');
    assert.equal(jpg.data.length, 9);
    assert.equal(existsSync(poster), false, 'the local poster is removed once uploaded');
    await s.remove(jobWith(jobId, published));
    assert.equal(await headStatus(published.thumbnail_path!), 404);
    assert.equal(await headStatus(published.output_path), 404);
  });

  it('keeps trying while S3 is down and succeeds once it is back, logging each retry', async () => {
    const { file, data } = writeMedia(out, 'retry.mp4', 10 * MiB);
    const { log, retries } = capturedLog();
    await s3.stop();
    const publishing = store({ upload_retries: 20 }).publish(
      randomUUID(),
      resultFor(file),
      new AbortController().signal,
      log,
    );
    try {
      for (let i = 0; i < 200 && retries().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(retries().length >= 2, 'retried while S3 was down');
    } finally {
      await s3.start();
    }
    const published = await publishing;
    assert.equal(sha((await readObject(published.output_path)).data), sha(data));
    const first = retries()[0]!;
    assert.equal(first['attempt'], 1);
    assert.equal(first['retries'], 20);
    assert.match(String(first['reason']), /ECONNREFUSED/);
    assert.equal(existsSync(file), false);
  });

  it('fails with GABE_ERR_UPLOAD after upload_retries while S3 stays down, keeping the file', async () => {
    const { file } = writeMedia(out, 'kept.mp4', 1 * MiB);
    const { log, retries } = capturedLog();
    const jobId = randomUUID();
    await s3.stop();
    try {
      await assert.rejects(
        store({ upload_retries: 2 }).publish(jobId, resultFor(file), new AbortController().signal, log),
        (err) => {
          assert.ok(isGabeError(err, 'UPLOAD'), String(err));
          assert.equal(err.code, 'GABE_ERR_UPLOAD');
          assert.equal(err.httpStatus, 502);
          assert.equal(err.retryable, false);
          assert.equal(err.details?.['local_path'], file);
          assert.match(
            err.message,
            new RegExp(`to s3://${s3.bucket}/gabe/${jobId}/kept\\.mp4: .*ECONNREFUSED`),
          );
          assert.match(err.message, /the file is kept at .*kept\.mp4$/);
          return true;
        },
      );
    } finally {
      await s3.start();
    }
    assert.equal(retries().length, 2, 'upload_retries retries, then the error');
    assert.equal(existsSync(file), true, 'the file stays in output_path');
  });

  it('does not retry what S3 refuses (an unknown access key): one try, GABE_ERR_UPLOAD', async () => {
    const { file } = writeMedia(out, 'denied.mp4', 1024);
    const { log, retries } = capturedLog();
    await assert.rejects(
      store({ access_key_id: 'NOT-A-KEY' }).publish(
        randomUUID(),
        resultFor(file),
        new AbortController().signal,
        log,
      ),
      (err) => isGabeError(err, 'UPLOAD') && /403/.test(err.message),
    );
    assert.equal(retries().length, 0);
    assert.equal(existsSync(file), true);
  });

  it('a part-way failure leaves every local file and deletes the objects already sent', async () => {
    const dir = tempDir('gabe-s3-out-');
    const video = writeMedia(dir, 'half.mp4', 1024);
    const missing = path.join(dir, 'half.fr.vtt'); // never written: its upload fails
    const jobId = randomUUID();
    const sub = { language: 'fr', name: 'French', path: missing, cues: 1 };
    await assert.rejects(
      store().publish(jobId, resultFor(video.file, [sub]), new AbortController().signal, capturedLog().log),
      (err) => isGabeError(err, 'UPLOAD') && /half\.fr\.vtt/.test(err.message),
    );
    assert.equal(existsSync(video.file), true);
    assert.equal(await headStatus(`s3://${s3.bucket}/gabe/${jobId}/half.mp4`), 404);
  });

  it('stops at once with GABE_ERR_CANCELLED when the job is cancelled mid-upload', async () => {
    const { file } = writeMedia(out, 'cancel.mp4', 20 * MiB);
    const ac = new AbortController();
    const jobId = randomUUID();
    const publishing = store().publish(jobId, resultFor(file), ac.signal, capturedLog().log);
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(publishing, (err) => isGabeError(err, 'CANCELLED'));
    assert.equal(existsSync(file), true);
    assert.equal(await headStatus(`s3://${s3.bucket}/gabe/${jobId}/cancel.mp4`), 404);
  });

  it("remove() deletes the job's objects and local leftovers, and nothing outside its own prefix", async () => {
    const mine = randomUUID();
    const other = randomUUID();
    const dir = tempDir('gabe-s3-out-');
    const a = writeMedia(dir, 'a.mp4', 1024);
    const vtt = path.join(dir, 'a.en.vtt');
    writeFileSync(vtt, 'WEBVTT\n');
    const b = writeMedia(dir, 'b.mp4', 1024);
    const s = store();
    const log = capturedLog().log;
    const signal = new AbortController().signal;
    const pa = await s.publish(
      mine,
      resultFor(a.file, [{ language: 'en', name: 'en', path: vtt, cues: 0 }]),
      signal,
      log,
    );
    const pb = await s.publish(other, resultFor(b.file), signal, log);
    // A row that also names the other job's object (tampered, or a bug) must not reach it.
    const leftover = writeMedia(out, 'leftover.mp4', 10);
    await s.remove(
      jobWith(mine, {
        ...pa,
        subtitles: [...(pa.subtitles ?? []), { language: null, name: 'x', path: pb.output_path, cues: 0 }],
      }),
    );
    assert.equal(await headStatus(pa.output_path), 404);
    assert.equal(await headStatus(pa.subtitles![0]!.path), 404);
    assert.equal(await headStatus(pb.output_path), 200);
    // A job whose upload failed keeps its file in output_path: remove() deletes it there.
    await s.remove(jobWith(randomUUID(), resultFor(leftover.file)));
    assert.equal(existsSync(leftover.file), false);
  });

  it('check() reports the bucket, and what went wrong when S3 is down or the bucket is missing', async () => {
    const s = store();
    assert.deepEqual(await s.check(), { ok: true, kind: 's3', location: `s3://${s3.bucket}/gabe/` });
    const missing = await store({ bucket: 'no-such-bucket' }).check();
    assert.equal(missing.ok, false);
    assert.match(missing.error ?? '', /404/);
    await s3.stop();
    try {
      const started = Date.now();
      const down = await s.check();
      assert.equal(down.ok, false);
      assert.match(down.error ?? '', /ECONNREFUSED/);
      assert.ok(Date.now() - started < 3_500, 'answers within the check timeout');
    } finally {
      await s3.start();
    }
  });
});
