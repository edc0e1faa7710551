import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Mp4Fixture, makeMp4 } from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

const json = (body: unknown) => ({
  headers: { 'content-type': 'application/json' },
  payload: JSON.stringify(body),
});

describe('API contract', () => {
  let origin: Origin;
  let mp4: Mp4Fixture;
  let svc: TestService;

  before(async () => {
    mp4 = await makeMp4({ seconds: 2 });
    origin = await startOrigin();
    origin.addFile('/video.mp4', mp4.file);
    svc = await startTestService({ max_jobs_per_ip: 0 });
  });
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  it('POST /download/mp4 answers 200 with a PENDING job in the spec shape, which completes', async () => {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      ...json({ url: `${origin.url}/video.mp4`, video_name: 'clip', type: 'mp4' }),
    });
    assert.equal(res.statusCode, 200, res.body);
    const job = res.json();
    assert.match(job.job_id, /^[0-9a-f-]{36}$/);
    assert.equal(job.status, 'PENDING');
    for (const key of [
      'created_at',
      'started_at',
      'completed_at',
      'result',
      'error',
      'progress',
      'total_segments',
      'downloaded_segments',
      'downloaded_bytes',
      'total_bytes',
      'speed_bps',
      'eta_seconds',
    ]) {
      assert.ok(key in job, `missing ${key}`);
    }
    await svc.waitFor(job.job_id, ['COMPLETED', 'FAILED']);
    const done = (await svc.app.inject({ method: 'GET', url: `/job/${job.job_id}` })).json();
    assert.equal(done.status, 'COMPLETED', done.error);
    assert.equal(done.progress, 100);
    assert.ok(path.isAbsolute(done.result.output_path));
    assert.equal(done.result.video_name, 'clip');
    assert.equal(done.result.original_url, `${origin.url}/video.mp4`);
    assert.equal(done.result.resolution, '320x180');
    // The file as published: the source plus the title and source tags in its moov.
    const size = statSync(done.result.output_path).size;
    assert.equal(done.result.file_size_bytes, size);
    assert.equal(done.result.file_size_mb, Math.round((size / 1048576) * 100) / 100);
    assert.equal(done.downloaded_bytes, mp4.size);
    assert.equal(done.total_bytes, mp4.size);
    assert.equal(
      mediaIdentity(done.result.output_path),
      mediaIdentity(mp4.file),
      'the same media and tables',
    );
  });

  it('POST /download/ validates the spec body for HLS jobs', async () => {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      ...json({ url: `${origin.url}/x.m3u8`, resolution: 'big' }),
    });
    assert.equal(res.statusCode, 422);
    assert.deepEqual(res.json().detail[0].loc, ['body', 'resolution']);
  });

  it('answers validation failures with 422 listing each bad field, FastAPI style', async () => {
    const missing = await svc.app.inject({ method: 'POST', url: '/download/mp4', ...json({}) });
    assert.equal(missing.statusCode, 422);
    assert.equal(missing.json().code, 'GABE_ERR_VALIDATION');
    assert.deepEqual(missing.json().detail, [
      { loc: ['body', 'url'], msg: 'field required', type: 'missing' },
    ]);

    const wrong = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      ...json({ url: 42, video_name: ['x'], surprise: true }),
    });
    assert.equal(wrong.statusCode, 422);
    const locs = wrong.json().detail.map((d: { loc: string[] }) => d.loc.join('.'));
    assert.ok(locs.includes('body.url'), locs);
    assert.ok(locs.includes('body.video_name'), locs);
    assert.ok(locs.includes('body.surprise'), locs);
  });

  it('refuses URLs that are not http(s) with 422', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.com/a.mp4', 'not a url', 'javascript:alert(1)']) {
      const res = await svc.app.inject({ method: 'POST', url: '/download/mp4', ...json({ url }) });
      assert.equal(res.statusCode, 422, url);
      assert.equal(res.json().code, 'GABE_ERR_INVALID_URL');
    }
  });

  it('answers broken JSON with 422, form bodies with 415, and bodies over 1 MB with 413', async () => {
    const bad = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: '{"url": ',
    });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().code, 'GABE_ERR_VALIDATION');
    const form = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'url=x',
    });
    assert.equal(form.statusCode, 415);
    assert.equal(form.json().code, 'GABE_ERR_BAD_REQUEST');
    const big = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      ...json({ url: `${origin.url}/video.mp4`, video_name: 'x'.repeat(1024 * 1024) }),
    });
    assert.equal(big.statusCode, 413);
    assert.deepEqual(Object.keys(big.json()).sort(), ['code', 'detail']);
    assert.equal(big.json().code, 'GABE_ERR_BODY_TOO_LARGE');
  });

  it('answers unknown jobs and routes with 404 JSON', async () => {
    const job = await svc.app.inject({ method: 'GET', url: '/job/00000000-0000-0000-0000-000000000000' });
    assert.equal(job.statusCode, 404);
    assert.equal(job.json().code, 'GABE_ERR_JOB_NOT_FOUND');
    const junk = await svc.app.inject({ method: 'DELETE', url: '/job/..%2F..%2Fetc' });
    assert.equal(junk.statusCode, 404);
    const route = await svc.app.inject({ method: 'GET', url: '/nope' });
    assert.equal(route.statusCode, 404);
    assert.equal(route.json().code, 'GABE_ERR_NOT_FOUND');
  });

  it('lists jobs newest first, filtered by status, with limit and offset', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await svc.app.inject({
        method: 'POST',
        url: '/download/mp4',
        ...json({ url: `${origin.url}/video.mp4`, video_name: `list-${i}` }),
      });
      ids.push(res.json().job_id);
    }
    for (const id of ids) await svc.waitFor(id, ['COMPLETED', 'FAILED']);
    const page = (
      await svc.app.inject({ method: 'GET', url: '/jobs?limit=2&offset=0&status=COMPLETED' })
    ).json();
    assert.equal(page.limit, 2);
    assert.deepEqual(
      page.jobs.map((j: { job_id: string }) => j.job_id),
      [ids[2], ids[1]],
    );
    assert.ok(page.total >= 3);
    const bad = await svc.app.inject({ method: 'GET', url: '/jobs?status=DONE' });
    assert.equal(bad.statusCode, 422);
  });

  it('answers absurd or out-of-range numbers in the /jobs query with 422 naming the field, never 500', async () => {
    for (const [query, field] of [
      ['offset=99999999999999999999', 'offset'],
      ['offset=1e300', 'offset'],
      ['offset=Infinity', 'offset'],
      ['offset=9007199254740993', 'offset'],
      ['offset=-1', 'offset'],
      ['limit=99999999999999999999', 'limit'],
      ['limit=Infinity', 'limit'],
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['limit=NaN', 'limit'],
    ] as const) {
      const res = await svc.app.inject({ method: 'GET', url: `/jobs?${query}` });
      assert.equal(res.statusCode, 422, `${query}: ${res.body}`);
      const body = res.json();
      assert.equal(body.code, 'GABE_ERR_VALIDATION', query);
      assert.deepEqual(body.detail[0].loc, ['querystring', field], query);
    }
    const far = await svc.app.inject({ method: 'GET', url: '/jobs?offset=1000000000' });
    assert.equal(far.statusCode, 200, 'the largest offset allowed answers an empty page');
    assert.deepEqual(far.json().jobs, []);
  });

  it('reports health: ffmpeg, database and disk', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/health' });
    assert.equal(res.statusCode, 200);
    const h = res.json();
    assert.equal(h.status, 'ok');
    assert.equal(h.ffmpeg.ok, true);
    assert.equal(h.database.ok, true);
    assert.equal(h.disk.ok, true);
    assert.ok(h.disk.free_bytes > 0);
  });

  it('serves Swagger UI at /docs and an OpenAPI document generated from the route schemas', async () => {
    const docs = await svc.app.inject({ method: 'GET', url: '/docs' });
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /swagger/i);
    const spec = (await svc.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    assert.equal(spec.openapi, '3.0.3');
    for (const p of ['/download/', '/download/mp4', '/job/{job_id}', '/jobs', '/health'])
      assert.ok(spec.paths[p], p);
    const body = spec.paths['/download/'].post.requestBody.content['application/json'].schema;
    assert.deepEqual(Object.keys(body.properties).sort(), [
      'audio_language',
      'audio_only',
      'callback_url',
      'container',
      'end',
      'headers',
      'iv',
      'key',
      'max_duration',
      'max_speed',
      'proxy',
      'resolution',
      'skip_discontinuity_runs',
      'skip_segments',
      'start',
      'subtitle_languages',
      'subtitles',
      'thumbnail',
      'url',
      'use_multithreading',
      'video_name',
    ]);
  });

  it('writes video_downloader.log with the job id on every job line', async () => {
    const file = path.join(svc.config.log_path, 'video_downloader.log');
    assert.ok(existsSync(file));
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; job_id?: string });
    const jobLines = lines.filter((l) => /^job /.test(l.msg));
    assert.ok(jobLines.length >= 2);
    for (const l of jobLines) assert.match(l.job_id ?? '', /^[0-9a-f-]{36}$/);
  });
});
