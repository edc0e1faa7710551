/**
 * The upload to S3 that begins while the MP4 is written (storage/progressive-upload.ts), against a real
 * S3 server (s3rver through the AWS SDK): files that grow on disk while the upload follows them, then
 * change the way the MP4 writer changes them (the head rewritten at the end) or the ways it must never
 * trust (a byte changed behind a part that went up, the file replaced), and a whole HLS job through
 * an embedded service with storage.s3, compared with the same job's file without S3.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, rename } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { ProgressiveUpload } from '../../src/storage/progressive-upload.js';
import { S3Files } from '../../src/storage/s3.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const HEAD = 64 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pino logger whose lines the test reads back. */
function capturedLog() {
  const lines: { msg: string; [k: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

async function waitUntil(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

/**
 * A file written as the MP4 writer writes it: a placeholder head, then the rest in order, `chunk`
 * bytes at a time with a pause between writes. `data` is what the file holds once the head is
 * rewritten (finishHead).
 */
async function growingFile(file: string, total: number, chunk = MiB, pauseMs = 15) {
  const data = randomBytes(total);
  const fh: FileHandle = await open(file, 'w');
  await fh.write(Buffer.alloc(HEAD), 0, HEAD, 0);
  const written = (async () => {
    for (let at = HEAD; at < total; at += chunk) {
      await fh.write(data, at, Math.min(chunk, total - at), at);
      await sleep(pauseMs);
    }
  })();
  return {
    data,
    fh,
    written,
    /** The head rewritten with its final bytes and the file closed, as NativeMerger.finish does. */
    async finishHead() {
      await written;
      await fh.write(data, 0, HEAD, 0);
      await fh.close();
    },
  };
}

describe('progressive upload to S3 while the file is written', () => {
  let s3: TestS3Server;
  let files: S3Files;
  let dir: string;

  before(async () => {
    s3 = await startS3Server();
    files = new S3Files(s3.config);
    dir = tempDir('gabe-progressive-');
  });
  after(async () => {
    files.close();
    await s3.close();
  });

  const upload = (key: string, log = capturedLog().log, signal = new AbortController().signal) =>
    new ProgressiveUpload({ files, key, contentType: 'video/mp4', headerBytes: HEAD, signal, log });

  async function object(key: string): Promise<Buffer> {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  }

  async function exists(key: string): Promise<boolean> {
    try {
      await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      return true;
    } catch {
      return false;
    }
  }

  /** Multipart uploads S3 still holds for `key` (ListMultipartUploads). */
  async function openUploads(key: string): Promise<string[]> {
    const out = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
    return (out.Uploads ?? []).filter((u) => u.Key === key).map((u) => u.UploadId ?? '');
  }

  const partRequests = (key: string) =>
    s3.requests.filter((r) => r.startsWith(`PUT /${s3.bucket}/${key}?`) && r.includes('partNumber=')).length;

  it('sends parts while a 40 MiB file grows and, its head rewritten at the end, makes an object identical to it', async () => {
    const key = `gabe/${randomUUID()}/grow.mp4`;
    const file = path.join(dir, 'grow.mp4');
    const w = await growingFile(file, 40 * MiB);
    const up = upload(key);
    up.start(file);
    await w.finishHead();
    const sentBeforeFinish = partRequests(key);
    const done = await up.finish(file);
    assert.ok(done, 'the early parts make the object');
    assert.ok(sentBeforeFinish >= 2, `parts went up while the file was written (${sentBeforeFinish})`);
    assert.ok(done.earlyParts >= sentBeforeFinish, `${done.earlyParts} early parts kept`);
    assert.equal(done.resentParts, 0);
    assert.equal(done.bytes, 40 * MiB);
    assert.equal(sha(await object(key)), sha(w.data));
    assert.deepEqual(await openUploads(key), []);
  });

  it('sends a part again when a byte behind it changed after it went up (its CRC-32 differs)', async () => {
    const key = `gabe/${randomUUID()}/changed.mp4`;
    const file = path.join(dir, 'changed.mp4');
    const { log, lines } = capturedLog();
    const w = await growingFile(file, 30 * MiB, MiB, 5);
    const up = upload(key, log);
    up.start(file);
    await w.written;
    // 30 MiB: part 1 is [0, 8 MiB), parts 2 and 3 the full 8 MiB after it, 4 the rest (sent at the end).
    await waitUntil('parts 2 and 3 went up', () => up.partsSent === 2);
    const at = 12 * MiB; // inside part 2
    w.data[at] = (w.data[at]! + 1) & 0xff;
    await w.fh.write(w.data, at, 1, at);
    await w.finishHead();
    const done = await up.finish(file);
    assert.ok(done);
    assert.equal(done.resentParts, 1);
    assert.equal(done.earlyParts, 1);
    assert.equal(sha(await object(key)), sha(w.data), 'the object holds the changed byte');
    assert.ok(lines.some((l) => l.msg.includes('sent again')));
  });

  it('gives up when the file was replaced by a rename (another inode): null, and no upload left in S3', async () => {
    const key = `gabe/${randomUUID()}/replaced.mp4`;
    const file = path.join(dir, 'replaced.mp4');
    const { log, lines } = capturedLog();
    const w = await growingFile(file, 30 * MiB, MiB, 5);
    const up = upload(key, log);
    up.start(file);
    await w.finishHead();
    await waitUntil('parts 2 and 3 went up', () => up.partsSent === 2);
    // What NativeMerger.relocate does: the same bytes with the moov moved, in a new file renamed over.
    writeFileSync(`${file}.faststart`, w.data);
    await rename(`${file}.faststart`, file);
    assert.equal(await up.finish(file), null);
    assert.deepEqual(await openUploads(key), []);
    assert.equal(await exists(key), false);
    assert.ok(lines.some((l) => String(l['reason'] ?? '').includes('replaced')));
  });

  it("aborts mid-way on the job's signal: the parts in flight are stopped and no upload is left in S3", async () => {
    const key = `gabe/${randomUUID()}/aborted.mp4`;
    const file = path.join(dir, 'aborted.mp4');
    const job = new AbortController();
    const w = await growingFile(file, 48 * MiB, MiB, 10);
    const up = upload(key, capturedLog().log, job.signal);
    up.start(file);
    await waitUntil('a part went up', () => up.partsSent >= 1);
    assert.deepEqual((await openUploads(key)).length, 1, 'the upload is open while the file grows');
    job.abort();
    await up.abort();
    await w.finishHead();
    assert.deepEqual(await openUploads(key), []);
    assert.equal(await up.finish(file), null);
    assert.equal(await exists(key), false);
  });

  it('drops the early upload when a part fails while S3 is down: null at finish, no upload left once S3 is back', async () => {
    const key = `gabe/${randomUUID()}/s3-down.mp4`;
    const file = path.join(dir, 's3-down.mp4');
    const { log, lines } = capturedLog();
    const w = await growingFile(file, 40 * MiB, MiB, 20);
    const up = upload(key, log);
    up.start(file);
    await waitUntil('a part went up', () => up.partsSent >= 1);
    await s3.stop();
    await waitUntil('a part failed', () => lines.some((l) => l.msg.includes('stopped')));
    await s3.start();
    await w.finishHead();
    assert.equal(await up.finish(file), null);
    assert.ok(lines.some((l) => String(l['reason'] ?? '').includes('a request failed')));
    assert.deepEqual(await openUploads(key), []);
    assert.equal(await exists(key), false);
  });

  it('leaves a file too small for two early parts to the plain upload: null, and no upload left in S3', async () => {
    const key = `gabe/${randomUUID()}/small.mp4`;
    const file = path.join(dir, 'small.mp4');
    const { log, lines } = capturedLog();
    const w = await growingFile(file, 12 * MiB);
    const up = upload(key, log);
    up.start(file);
    await w.finishHead();
    assert.equal(await up.finish(file), null);
    assert.equal(partRequests(key), 0);
    assert.deepEqual(await openUploads(key), []);
    assert.ok(lines.some((l) => String(l['reason'] ?? '').includes('too few')));
    assert.equal(readFileSync(file).length, 12 * MiB, 'the file is left for the plain upload');
  });
});
