import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job } from '../src/jobs/types.js';
import { ffprobeJson, type Mp4Fixture, makeHlsTs, makeMp4 } from './helpers/fixtures.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startProxy } from './helpers/proxy.js';
import { closeAllServices, startTestService, type TestService } from './helpers/service.js';

describe('MP4 downloads against a faulty origin', () => {
  let origin: Origin;
  let small: Mp4Fixture;
  let big: Mp4Fixture;
  let svc: TestService;
  let ip = 0;

  before(async () => {
    small = await makeMp4({ seconds: 2 });
    big = await makeMp4({ seconds: 8, kbps: 2500, width: 640, height: 360 });
    origin = await startOrigin();
    origin.addFile('/small.mp4', small.file);
    origin.addFile('/big.mp4', big.file);
    svc = await startTestService({ connection_timeout: 1, max_retries: 3, chunk_size: 64 * 1024 });
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  async function download(url: string, extra: Record<string, unknown> = {}): Promise<Job> {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url, ...extra }),
      remoteAddress: `10.1.0.${++ip}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  }

  const sameBytes = (job: Job, fixture: Mp4Fixture) => {
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.ok(readFileSync(job.result!.output_path).equals(readFileSync(fixture.file)), 'byte-identical');
  };

  it('follows redirects to the file', async () => {
    origin.redirect('/r1', '/r2', 301);
    origin.redirect('/r2', '/big.mp4', 302);
    sameBytes(await download(`${origin.url}/r1`), big);
  });

  it('completes without a Content-Length (chunked)', async () => {
    origin.addFault({ match: '/small.mp4', chunked: true });
    const job = await download(`${origin.url}/small.mp4`);
    sameBytes(job, small);
    assert.equal(job.total_bytes, null);
  });

  it('retries 503 (honouring Retry-After) and 500 with back-off, then succeeds', async () => {
    origin.addFault({ match: '/small.mp4', status: 503, retryAfter: 1, times: 1 });
    origin.addFault({ match: '/small.mp4', skip: 1, status: 500, times: 1 });
    const started = Date.now();
    sameBytes(await download(`${origin.url}/small.mp4`), small);
    assert.equal(origin.countRequests('/small.mp4'), 3);
    assert.ok(Date.now() - started >= 1000, 'waited for Retry-After');
  });

  it('resumes a reset transfer with Range from the byte it reached', async () => {
    origin.addFault({ match: '/big.mp4', truncate: { fraction: 0.5 }, times: 1 });
    sameBytes(await download(`${origin.url}/big.mp4`), big);
    const gets = origin.requests.filter((r) => r.path === '/big.mp4');
    assert.equal(gets.length, 2);
    assert.match(String(gets[1]!.headers['range']), /^bytes=[1-9]\d*-$/);
  });

  it('starts over when the server ignores Range on the retry', async () => {
    origin.addFault({ match: '/big.mp4', truncate: { fraction: 0.3 }, times: 1 });
    origin.addFault({ match: '/big.mp4', ignoreRange: true });
    sameBytes(await download(`${origin.url}/big.mp4`), big);
  });

  it('detects a stalled body with the read timeout and retries', async () => {
    origin.addFault({ match: '/small.mp4', stall: { ms: 5000, afterFraction: 0.2 }, times: 1 });
    const started = Date.now();
    sameBytes(await download(`${origin.url}/small.mp4`), small);
    assert.ok(Date.now() - started < 5000, 'did not wait for the stall to end');
  });

  it('fails at once on 404, naming the status, without retrying', async () => {
    const job = await download(`${origin.url}/missing.mp4`);
    assert.equal(job.status, 'FAILED');
    assert.match(job.error ?? '', /HTTP 404/);
    assert.equal(job.error_code, 'GABE_ERR_HTTP_STATUS');
    assert.equal(origin.countRequests('/missing.mp4'), 1);
  });

  it('fails after max_retries when the origin keeps failing', async () => {
    origin.addFault({ match: '/small.mp4', status: 502 });
    const job = await download(`${origin.url}/small.mp4`);
    assert.equal(job.status, 'FAILED');
    assert.match(job.error ?? '', /HTTP 502/);
    assert.equal(origin.countRequests('/small.mp4'), 4, 'one try and three retries');
  });

  it('fails with a clear error when the URL serves an HTML page or garbage', async () => {
    origin.addFault({ match: '/small.mp4', html: true });
    const html = await download(`${origin.url}/small.mp4`);
    assert.equal(html.status, 'FAILED');
    assert.equal(html.error_code, 'GABE_ERR_NOT_A_VIDEO');
    assert.match(html.error ?? '', /HTML/);
    origin.reset();
    origin.route('/garbage.mp4', { body: Buffer.alloc(50_000, 7), contentType: 'video/mp4' });
    const garbage = await download(`${origin.url}/garbage.mp4`);
    assert.equal(garbage.status, 'FAILED');
    assert.equal(garbage.error_code, 'GABE_ERR_NOT_A_VIDEO');
    assert.deepEqual(readdirSync(svc.config.temp_path), [], 'temp files removed after failure');
  });

  it('remuxes a non-MP4 container served at an MP4 URL into a real MP4', async () => {
    const ts = await makeHlsTs({ seconds: 2 });
    origin.addFile('/actually-ts.mp4', path.join(path.dirname(ts.playlist), ts.segments[0]!));
    const job = await download(`${origin.url}/actually-ts.mp4`);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const probe = await ffprobeJson(job.result!.output_path);
    assert.match(probe.format.format_name, /mp4/);
  });

  it('never overwrites: the same name gets a numbered suffix', async () => {
    const a = await download(`${origin.url}/small.mp4`, { video_name: 'same' });
    const b = await download(`${origin.url}/small.mp4`, { video_name: 'same' });
    assert.equal(path.basename(a.result!.output_path), 'same.mp4');
    assert.equal(path.basename(b.result!.output_path), 'same (1).mp4');
    assert.equal(b.result!.video_name, 'same (1)');
  });

  it('keeps a traversal name inside output_path', async () => {
    const job = await download(`${origin.url}/small.mp4`, { video_name: '../../../../tmp/evil\u0000name' });
    assert.equal(job.status, 'COMPLETED');
    assert.equal(path.dirname(job.result!.output_path), svc.config.output_path);
  });

  it('goes through the proxy named in the request', async () => {
    const proxy = await startProxy();
    try {
      sameBytes(await download(`${origin.url}/small.mp4`, { proxy: proxy.url }), small);
      assert.deepEqual(proxy.targets, [`127.0.0.1:${origin.port}`]);
    } finally {
      await proxy.close();
    }
  });

  it('reports bytes, speed and ETA while running', async () => {
    origin.addFault({ match: '/big.mp4', throttleBytesPerSec: 800_000 });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/big.mp4` }),
      remoteAddress: '10.2.0.1',
    });
    const id = res.json().job_id;
    await svc.waitFor(id, (j) => j.downloaded_bytes > 0);
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      const live = (await svc.app.inject({ method: 'GET', url: `/job/${id}` })).json();
      if (
        live.status === 'PROCESSING' &&
        live.speed_bps > 0 &&
        live.eta_seconds !== null &&
        live.progress > 0
      ) {
        assert.equal(live.total_bytes, big.size);
        assert.ok(live.downloaded_bytes < big.size);
        seen = true;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(seen, 'saw live progress with speed and ETA');
    sameBytes(await svc.waitFor(id, ['COMPLETED', 'FAILED']), big);
  });

  it('cancels a running download: the transfer stops within a second and partial files go', async () => {
    origin.addFault({ match: '/big.mp4', throttleBytesPerSec: 100_000 });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/big.mp4`, video_name: 'cancelled' }),
      remoteAddress: '10.3.0.1',
    });
    const id = res.json().job_id;
    await svc.waitFor(id, (j) => j.status === 'PROCESSING');
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(existsSync(path.join(svc.config.temp_path, id)), 'partial files exist while running');
    const started = Date.now();
    const del = await svc.app.inject({ method: 'DELETE', url: `/job/${id}` });
    assert.ok(Date.now() - started < 1000, `cancel took ${Date.now() - started} ms`);
    assert.equal(del.statusCode, 200);
    assert.equal(del.json().status, 'CANCELLED');
    assert.ok(!existsSync(path.join(svc.config.temp_path, id)), 'partial files removed');
    assert.ok(!existsSync(path.join(svc.config.output_path, 'cancelled.mp4')));
    await new Promise((r) => setTimeout(r, 300));
    const req = origin.requests.filter((r) => r.path === '/big.mp4');
    assert.equal(req.length, 1, 'no new request after cancel');
    assert.equal(req[0]!.completed, false, 'the origin saw the transfer aborted');
    assert.equal(svc.store.get(id)?.status, 'CANCELLED');
  });
});
