import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Mp4Fixture, makeMp4 } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef00';

describe('API keys and submission rate limit', () => {
  let origin: Origin;
  let mp4: Mp4Fixture;
  let svc: TestService;

  before(async () => {
    mp4 = await makeMp4({ seconds: 1 });
    origin = await startOrigin();
    origin.addFile('/v.mp4', mp4.file);
    svc = await startTestService({ api_keys: [ALICE, BOB], max_jobs_per_key: 2, max_jobs_per_ip: 0 });
  });
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  const submit = (headers: Record<string, string>, url = `${origin.url}/v.mp4`) =>
    svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json', ...headers },
      payload: JSON.stringify({ url }),
    });

  it('requires a key on every route but /health, by Bearer or X-API-Key', async () => {
    for (const [method, url] of [
      ['GET', '/jobs'],
      ['GET', '/job/00000000-0000-0000-0000-000000000000'],
      ['DELETE', '/job/00000000-0000-0000-0000-000000000000'],
      ['POST', '/download/mp4'],
      ['POST', '/download/'],
      ['GET', '/docs'],
      ['GET', '/openapi.json'],
    ] as const) {
      const res = await svc.app.inject({ method, url });
      assert.equal(res.statusCode, 401, `${method} ${url}`);
      assert.equal(res.json().code, 'GABE_ERR_UNAUTHORIZED');
      assert.equal(res.headers['www-authenticate'], 'Bearer');
    }
    const wrong = await svc.app.inject({
      method: 'GET',
      url: '/jobs',
      headers: { authorization: 'Bearer nope-nope-nope-nope' },
    });
    assert.equal(wrong.statusCode, 401);
    assert.match(wrong.json().detail, /not valid/);
    assert.equal((await svc.app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
    assert.equal(
      (await svc.app.inject({ method: 'GET', url: '/jobs', headers: { authorization: `Bearer ${ALICE}` } }))
        .statusCode,
      200,
    );
    assert.equal(
      (await svc.app.inject({ method: 'GET', url: '/jobs', headers: { 'x-api-key': BOB } })).statusCode,
      200,
    );
  });

  it('lets a key see and cancel only its own jobs', async () => {
    const res = await submit({ authorization: `Bearer ${ALICE}` });
    assert.equal(res.statusCode, 200, res.body);
    const id = res.json().job_id;
    await svc.waitFor(id, ['COMPLETED', 'FAILED']);
    const asBob = { 'x-api-key': BOB };
    assert.equal(
      (await svc.app.inject({ method: 'GET', url: `/job/${id}`, headers: asBob })).statusCode,
      404,
    );
    assert.equal(
      (await svc.app.inject({ method: 'DELETE', url: `/job/${id}`, headers: asBob })).statusCode,
      404,
    );
    const bobList = (await svc.app.inject({ method: 'GET', url: '/jobs', headers: asBob })).json();
    assert.ok(!bobList.jobs.some((j: { job_id: string }) => j.job_id === id));
    const aliceList = (
      await svc.app.inject({ method: 'GET', url: '/jobs', headers: { 'x-api-key': ALICE } })
    ).json();
    assert.ok(aliceList.jobs.some((j: { job_id: string }) => j.job_id === id));
    const own = await svc.app.inject({ method: 'GET', url: `/job/${id}`, headers: { 'x-api-key': ALICE } });
    assert.equal(own.json().status, 'COMPLETED');
    assert.equal(svc.store.get(id)?.owner?.length, 64, 'a hash is stored, never the key');
  });

  it('limits PENDING or PROCESSING jobs per key with 429', async () => {
    origin.addFault({ match: '/v.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    try {
      const headers = { 'x-api-key': BOB };
      assert.equal((await submit(headers)).statusCode, 200);
      assert.equal((await submit(headers)).statusCode, 200);
      const third = await submit(headers);
      assert.equal(third.statusCode, 429);
      assert.equal(third.json().code, 'GABE_ERR_KEY_LIMIT');
      assert.equal((await submit({ 'x-api-key': ALICE })).statusCode, 200, 'other keys are not affected');
    } finally {
      for (const j of svc.store.list({ limit: 50, offset: 0 }).jobs) await svc.scheduler.cancel(j.id);
      origin.reset();
    }
  });

  it('limits submissions per client per minute with 429 and Retry-After', async () => {
    const limited = await startTestService({ rate_limit_per_minute: 3, max_jobs_per_ip: 0 });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await limited.app.inject({
        method: 'POST',
        url: '/download/mp4',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ url: `${origin.url}/v.mp4` }),
        remoteAddress: '10.7.0.1',
      });
      codes.push(res.statusCode);
      if (res.statusCode === 429) {
        assert.equal(res.json().code, 'GABE_ERR_RATE_LIMITED');
        assert.ok(Number(res.headers['retry-after']) > 0);
      }
    }
    assert.deepEqual(codes, [200, 200, 200, 429, 429]);
    const other = await limited.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/v.mp4` }),
      remoteAddress: '10.7.0.2',
    });
    assert.equal(other.statusCode, 200, 'another client has its own budget');
    const polls = await Promise.all(
      Array.from({ length: 10 }, () =>
        limited.app.inject({ method: 'GET', url: '/jobs', remoteAddress: '10.7.0.1' }),
      ),
    );
    assert.ok(
      polls.every((r) => r.statusCode === 200),
      'reads are not rate limited',
    );
  });

  it('counts one submission budget per client across POST /download/ and POST /download/mp4', async () => {
    const limited = await startTestService({ rate_limit_per_minute: 4, max_jobs_per_ip: 0 });
    const send = (route: '/download/' | '/download/mp4') =>
      limited.app.inject({
        method: 'POST',
        url: route,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ url: `${origin.url}/${route === '/download/' ? 'v.m3u8' : 'v.mp4'}` }),
        remoteAddress: '10.7.1.1',
      });
    const codes: number[] = [];
    for (const route of ['/download/', '/download/mp4', '/download/', '/download/mp4'] as const)
      codes.push((await send(route)).statusCode);
    assert.deepEqual(codes, [200, 200, 200, 200]);
    for (const route of ['/download/', '/download/mp4'] as const) {
      const res = await send(route);
      assert.equal(res.statusCode, 429, `${route} after 4 submissions split across both routes`);
      assert.equal(res.json().code, 'GABE_ERR_RATE_LIMITED');
    }
  });

  it('limits /probe per client with a budget of its own, apart from submissions', async () => {
    const limited = await startTestService({ rate_limit_per_minute: 2, max_jobs_per_ip: 0 });
    const probe = () =>
      limited.app.inject({
        method: 'POST',
        url: '/probe',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ url: `${origin.url}/v.mp4` }),
        remoteAddress: '10.7.2.1',
      });
    assert.equal((await probe()).statusCode, 200);
    assert.equal((await probe()).statusCode, 200);
    const third = await probe();
    assert.equal(third.statusCode, 429, third.body);
    assert.equal(third.json().code, 'GABE_ERR_RATE_LIMITED');
    const submission = await limited.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/v.mp4` }),
      remoteAddress: '10.7.2.1',
    });
    assert.equal(submission.statusCode, 200, 'probes do not use up the submission budget');
  });
});
