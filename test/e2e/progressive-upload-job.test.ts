/**
 * A whole HLS job through an embedded service with storage.s3 (a real s3rver): the in-process remux
 * announces its MP4, the runner begins its upload, parts go up while the segments still arrive, and
 * the object served by GET /job/{id}/file is byte for byte the file the same job makes without S3.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { Job } from '../../src/jobs/types.js';
import { type HlsMediaFixture, makeHlsTs } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

const SLOW = { max_jobs_per_ip: 0, segment_concurrency: 2, segment_concurrency_max: 2 };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('an HLS job with storage.s3 uploads its MP4 while it is written', () => {
  let s3: TestS3Server;
  let origin: Origin;
  let hls: HlsMediaFixture;
  let ip = 0;

  before(async () => {
    s3 = await startS3Server();
    origin = await startOrigin();
    // ~40 MB in 1 s segments: five 8 MiB parts, most of which can go up before the last segment.
    hls = await makeHlsTs({ seconds: 24, segmentSeconds: 1, width: 1280, height: 720, kbps: 14_000 });
    origin.serveDir('/big/', hls.dir);
    // Paced, two segments at a time (SLOW below), so the file grows over a few seconds as from a real
    // origin: all segments at once would arrive together, the MP4 written in one go at the end.
    origin.faults({ match: /\.ts$/, throttleBytesPerSec: 8_000_000 });
  });
  after(async () => {
    await closeAllServices();
    await origin.close();
    await s3.close();
  });

  async function submit(svc: TestService, video_name: string): Promise<string> {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/big/${hls.playlistName}`, video_name }),
      remoteAddress: `10.7.0.${++ip}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return res.json().job_id as string;
  }

  /** Multipart uploads S3 holds under the job's folder (ListMultipartUploads). */
  async function openUploads(jobId: string): Promise<number> {
    const out = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
    return (out.Uploads ?? []).filter((u) => u.Key?.startsWith(`gabe/${jobId}/`)).length;
  }

  async function download(svc: TestService, video_name: string): Promise<Job> {
    const id = await submit(svc, video_name);
    const job = await svc.waitFor(id, ['COMPLETED', 'FAILED', 'CANCELLED'], 120_000);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    return job;
  }

  it('sends parts before the job ends, and the object equals the same job’s file without S3', async () => {
    const plain = await startTestService(SLOW);
    const withS3 = await startTestService({ ...SLOW, storage: { s3: s3.config } });
    const local = await download(plain, 'film');
    const uploaded = await download(withS3, 'film');
    assert.equal(uploaded.result!.output_path, `s3://${s3.bucket}/gabe/${uploaded.id}/film.mp4`);
    const file = await withS3.app.inject({ method: 'GET', url: `/job/${uploaded.id}/file` });
    assert.equal(file.statusCode, 200);
    const expected = readFileSync(local.result!.output_path);
    assert.ok(expected.length > 32 * 1024 * 1024, `a file of several parts (${expected.length} bytes)`);
    assert.equal(file.rawPayload.length, expected.length);
    assert.equal(sha(file.rawPayload), sha(expected));

    type Line = {
      msg: string;
      job_id?: string;
      reason?: string;
      early_parts?: number;
      resent_parts?: number;
    };
    const lines = readFileSync(path.join(withS3.config.log_path, 'video_downloader.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.job_id === uploaded.id);
    const done = lines.find((l) => l.msg === 'uploaded to S3');
    assert.ok(done, 'the upload is logged');
    // On failure the job's log says why (e.g. "0 part(s) went up early": the file grew too fast).
    const story = lines.map((l) => `${l.msg}${l.reason ? `: ${l.reason}` : ''}`).join(' / ');
    assert.ok((done.early_parts ?? 0) >= 2, `parts went up while the file was written: ${story}`);
    assert.equal(done.resent_parts, 0, 'no part changed after it went up');
    const parts = s3.requests.filter(
      (r) => r.startsWith(`PUT /${s3.bucket}/gabe/${uploaded.id}/film.mp4?`) && r.includes('partNumber='),
    );
    assert.equal(parts.length, Math.ceil(expected.length / (8 * 1024 * 1024)), 'each part sent once');
  });

  it('aborts the multipart upload when the job is cancelled while its parts go up: none is left in S3', async () => {
    const withS3 = await startTestService({ ...SLOW, storage: { s3: s3.config } });
    const id = await submit(withS3, 'cancelled');
    const deadline = Date.now() + 60_000;
    const partSent = () =>
      s3.requests.some((r) => r.startsWith(`PUT /${s3.bucket}/gabe/${id}/`) && r.includes('partNumber='));
    while (!partSent()) {
      assert.ok(Date.now() < deadline, 'a part went up while the job ran');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await openUploads(id), 1, 'the upload is open while the job runs');
    const res = await withS3.app.inject({ method: 'DELETE', url: `/job/${id}` });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await withS3.waitFor(id, ['CANCELLED', 'COMPLETED', 'FAILED'])).status, 'CANCELLED');
    assert.equal(await openUploads(id), 0);
  });
});
