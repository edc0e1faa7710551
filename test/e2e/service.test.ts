import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { cleanupOnce } from '../../src/jobs/cleanup.js';
import { createLogger } from '../../src/service/log.js';
import { type Mp4Fixture, makeMp4 } from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

const submit = (
  svc: TestService,
  url: string,
  opts: { ip?: string; headers?: Record<string, string>; name?: string } = {},
) =>
  svc.app.inject({
    method: 'POST',
    url: '/download/mp4',
    headers: { 'content-type': 'application/json', ...opts.headers },
    payload: JSON.stringify({ url, ...(opts.name ? { video_name: opts.name } : {}) }),
    remoteAddress: opts.ip ?? '10.9.9.9',
  });

describe('queue, limits, cancellation, restarts and cleanup', () => {
  let origin: Origin;
  let mp4: Mp4Fixture;

  before(async () => {
    mp4 = await makeMp4({ seconds: 4, kbps: 1200 });
    origin = await startOrigin();
    origin.addFile('/v.mp4', mp4.file);
  });
  afterEach(async () => {
    await closeAllServices();
    origin.reset();
  });
  after(() => origin.close());

  it('runs at most max_concurrent_downloads jobs at once, in FIFO order', async () => {
    origin.addFault({ match: '/v.mp4', latencyMs: 150 });
    const svc = await startTestService({ max_concurrent_downloads: 2, max_jobs_per_ip: 0 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit(svc, `${origin.url}/v.mp4`)).json().job_id);
    let peak = 0;
    while (svc.store.countByStatus().COMPLETED + svc.store.countByStatus().FAILED < 5) {
      peak = Math.max(peak, svc.store.countByStatus().PROCESSING);
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(peak, 2);
    const starts = ids.map((id) => svc.store.get(id)!.started_at!);
    assert.deepEqual([...starts].sort(), starts, 'started in submission order');
  });

  it('answers 429 at max_jobs_per_ip and 503 with Retry-After at max_queue_size', async () => {
    origin.addFault({ match: '/v.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    const svc = await startTestService({
      max_concurrent_downloads: 1,
      max_queue_size: 2,
      max_jobs_per_ip: 2,
      connection_timeout: 30,
    });
    assert.equal((await submit(svc, `${origin.url}/v.mp4`, { ip: '10.0.0.1' })).statusCode, 200);
    assert.equal((await submit(svc, `${origin.url}/v.mp4`, { ip: '10.0.0.1' })).statusCode, 200);
    const limited = await submit(svc, `${origin.url}/v.mp4`, { ip: '10.0.0.1' });
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().code, 'GABE_ERR_IP_LIMIT');
    // One job runs, one is PENDING; one more fills the queue, the next is refused.
    await svc.waitFor(svc.store.list({ limit: 10, offset: 0 }).jobs.at(-1)!.id, ['PROCESSING']);
    assert.equal((await submit(svc, `${origin.url}/v.mp4`, { ip: '10.0.0.2' })).statusCode, 200);
    const full = await submit(svc, `${origin.url}/v.mp4`, { ip: '10.0.0.3' });
    assert.equal(full.statusCode, 503);
    assert.equal(full.json().code, 'GABE_ERR_QUEUE_FULL');
    assert.ok(Number(full.headers['retry-after']) > 0);
  });

  it('takes the client IP from X-Forwarded-For only with trust_proxy', async () => {
    origin.addFault({ match: '/v.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    const trusting = await startTestService({
      trust_proxy: true,
      max_jobs_per_ip: 1,
      connection_timeout: 30,
    });
    for (const client of ['203.0.113.1', '203.0.113.2']) {
      const res = await submit(trusting, `${origin.url}/v.mp4`, {
        ip: '127.0.0.1',
        headers: { 'x-forwarded-for': client },
      });
      assert.equal(res.statusCode, 200, `${client} is a client of its own`);
    }
    const again = await submit(trusting, `${origin.url}/v.mp4`, {
      ip: '127.0.0.1',
      headers: { 'x-forwarded-for': '203.0.113.1' },
    });
    assert.equal(again.statusCode, 429);
    await closeAllServices();

    const plain = await startTestService({ max_jobs_per_ip: 1, connection_timeout: 30 });
    await submit(plain, `${origin.url}/v.mp4`, {
      ip: '127.0.0.1',
      headers: { 'x-forwarded-for': '203.0.113.1' },
    });
    const spoofed = await submit(plain, `${origin.url}/v.mp4`, {
      ip: '127.0.0.1',
      headers: { 'x-forwarded-for': '203.0.113.9' },
    });
    assert.equal(spoofed.statusCode, 429, 'X-Forwarded-For is ignored without trust_proxy');
  });

  it('with trust_proxy true, a forged left-most X-Forwarded-For entry bypasses neither max_jobs_per_ip nor the rate limit', async () => {
    origin.addFault({ match: '/v.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    // The client 203.0.113.1 writes its own X-Forwarded-For; the one proxy (127.0.0.1) appends the
    // address it saw. The entry the client wrote changes on every request.
    const viaProxy = (forged: string) => ({
      ip: '127.0.0.1',
      headers: { 'x-forwarded-for': `${forged}, 203.0.113.1` },
    });
    const perIp = await startTestService({ trust_proxy: true, max_jobs_per_ip: 1, connection_timeout: 30 });
    const first = await submit(perIp, `${origin.url}/v.mp4`, viaProxy('198.51.100.1'));
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(perIp.store.get(first.json().job_id)!.client_ip, '203.0.113.1');
    const second = await submit(perIp, `${origin.url}/v.mp4`, viaProxy('198.51.100.2'));
    assert.equal(second.statusCode, 429, second.body);
    assert.equal(second.json().code, 'GABE_ERR_IP_LIMIT');
    await closeAllServices();

    const rated = await startTestService({
      trust_proxy: true,
      rate_limit_per_minute: 2,
      max_jobs_per_ip: 0,
      connection_timeout: 30,
    });
    const codes: number[] = [];
    for (let i = 1; i <= 3; i++)
      codes.push((await submit(rated, `${origin.url}/v.mp4`, viaProxy(`198.51.100.${i}`))).statusCode);
    assert.deepEqual(codes, [200, 200, 429]);
  });

  it('takes the address the last trusted proxy saw, with trust_proxy as a hop count or an address list', async () => {
    origin.addFault({ match: '/v.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    // client 203.0.113.5 -> proxy A 10.0.0.2 -> proxy B 127.0.0.1 -> Gabe, with a forged entry first.
    const chain = { ip: '127.0.0.1', headers: { 'x-forwarded-for': '198.51.100.9, 203.0.113.5, 10.0.0.2' } };
    const clientOf = async (svc: TestService, opts: Parameters<typeof submit>[2]) => {
      const res = await submit(svc, `${origin.url}/v.mp4`, opts);
      assert.equal(res.statusCode, 200, res.body);
      return svc.store.get(res.json().job_id)!.client_ip;
    };
    const hops = await startTestService({ trust_proxy: 2, max_jobs_per_ip: 0, connection_timeout: 30 });
    assert.equal(await clientOf(hops, chain), '203.0.113.5');
    const oneHop = await startTestService({ trust_proxy: 1, max_jobs_per_ip: 0, connection_timeout: 30 });
    assert.equal(await clientOf(oneHop, chain), '10.0.0.2', 'one hop: the address proxy B saw');
    const listed = await startTestService({
      trust_proxy: ['127.0.0.1', '10.0.0.0/8'],
      max_jobs_per_ip: 0,
      connection_timeout: 30,
    });
    assert.equal(await clientOf(listed, chain), '203.0.113.5');
    assert.equal(
      await clientOf(listed, { ...chain, ip: '192.0.2.7' }),
      '192.0.2.7',
      'X-Forwarded-For from an address not in the list is ignored',
    );
  });

  it('DELETE takes a PENDING job out of the queue and deletes a finished job with its file', async () => {
    origin.addFault({ match: '/v.mp4', stall: { ms: 60_000, beforeHeaders: true }, times: 1 });
    const svc = await startTestService({
      max_concurrent_downloads: 1,
      max_jobs_per_ip: 0,
      connection_timeout: 30,
    });
    const blocker = (await submit(svc, `${origin.url}/v.mp4`)).json().job_id;
    const pending = (await submit(svc, `${origin.url}/v.mp4`)).json().job_id;
    await svc.waitFor(blocker, ['PROCESSING']);
    // PROCESSING comes before its request reaches the origin: wait for that, so the count below
    // tells the blocker's one request from a (wrong) request of the cancelled job.
    while (origin.countRequests('/v.mp4') < 1) await new Promise((r) => setTimeout(r, 10));
    const del = await svc.app.inject({ method: 'DELETE', url: `/job/${pending}` });
    assert.equal(del.json().status, 'CANCELLED');
    await svc.app.inject({ method: 'DELETE', url: `/job/${blocker}` });
    assert.equal(origin.countRequests('/v.mp4'), 1, 'the cancelled PENDING job never ran');

    const done = await svc.waitFor((await submit(svc, `${origin.url}/v.mp4`)).json().job_id, ['COMPLETED']);
    assert.ok(existsSync(done.result!.output_path));
    const gone = await svc.app.inject({ method: 'DELETE', url: `/job/${done.id}` });
    assert.equal(gone.statusCode, 200);
    assert.equal(gone.json().status, 'COMPLETED');
    assert.ok(!existsSync(done.result!.output_path), 'output file deleted');
    assert.equal((await svc.app.inject({ method: 'GET', url: `/job/${done.id}` })).statusCode, 404);
  });

  it('keeps every job across a restart: finished ones stay, queued and interrupted ones complete', async () => {
    origin.addFault({ match: '/v.mp4', throttleBytesPerSec: 150_000 });
    let svc = await startTestService({ max_concurrent_downloads: 1, max_jobs_per_ip: 0 });
    const failed = await svc.waitFor((await submit(svc, `${origin.url}/nope.mp4`)).json().job_id, ['FAILED']);
    const running = (await submit(svc, `${origin.url}/v.mp4`, { name: 'running' })).json().job_id;
    const queued = (await submit(svc, `${origin.url}/v.mp4`, { name: 'queued' })).json().job_id;
    await svc.waitFor(running, (j) => j.status === 'PROCESSING' && j.downloaded_bytes > 100_000);
    svc = await svc.restart();
    origin.reset();
    assert.equal(svc.store.get(failed.id)?.status, 'FAILED');
    for (const id of [running, queued]) {
      const job = await svc.waitFor(id, ['COMPLETED', 'FAILED']);
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      assert.equal(mediaIdentity(job.result!.output_path), mediaIdentity(mp4.file));
    }
    // Every first request asks for `bytes=0-`; a resumed one starts past the bytes already on disk.
    const resumed = origin.requests.find(
      (r) => r.path === '/v.mp4' && Number(/^bytes=(\d+)-/.exec(String(r.headers['range']))?.[1]) > 0,
    );
    assert.ok(
      resumed,
      `the interrupted job resumed with Range instead of starting over: ${origin.requests.map((r) => r.headers['range']).join(', ')}`,
    );
    assert.equal(svc.store.get(running)!.attempts, 2);
  });

  it('cleanup deletes finished jobs older than clean_jobs_after_days with their files, and orphan temp folders', async () => {
    const svc = await startTestService({ clean_jobs_after_days: 1, max_jobs_per_ip: 0 });
    const done = await svc.waitFor((await submit(svc, `${origin.url}/v.mp4`)).json().job_id, ['COMPLETED']);
    const fresh = await svc.waitFor((await submit(svc, `${origin.url}/v.mp4`)).json().job_id, ['COMPLETED']);
    svc.store.db
      .prepare('UPDATE jobs SET completed_at = ? WHERE id = ?')
      .run(new Date(Date.now() - 2 * 86_400_000).toISOString(), done.id);
    // A job's temp folder goes once its COMPLETED state is stored (a crash in between leaves a folder the
    // sweep removes, never an output file no job names): wait for both jobs' to be gone.
    for (const id of [done.id, fresh.id]) {
      const dir = path.join(svc.config.temp_path, id);
      for (let i = 0; existsSync(dir) && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    }
    const orphan = path.join(svc.config.temp_path, '11111111-2222-3333-4444-555555555555');
    mkdirSync(orphan, { recursive: true });
    writeFileSync(path.join(orphan, 'download.part'), 'x');
    const report = await cleanupOnce(svc.store, svc.results, svc.config, createLogger({ stdout: false }));
    assert.deepEqual(report, { jobs: 1, tempDirs: 1 });
    assert.equal(svc.store.get(done.id), null);
    assert.ok(!existsSync(done.result!.output_path));
    assert.ok(existsSync(fresh.result!.output_path), 'recent jobs stay');
    assert.ok(!existsSync(orphan));
  });
});
