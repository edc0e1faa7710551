import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { type Mp4Fixture, makeMp4 } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

const CLIENTS = 50;
const JOBS_PER_CLIENT = 20;
const IPS = 10;

interface Outcome {
  status: number;
  code?: string;
  jobId?: string;
  ip: string;
}

/** 50 clients submitting 20 jobs each over real HTTP, as 10 client IPs behind a trusted proxy. */
async function storm(svc: TestService, url: string): Promise<Outcome[]> {
  const dispatcher = new Agent({ connections: CLIENTS });
  const outcomes: Outcome[] = [];
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      const ip = `198.51.100.${client % IPS}`;
      for (let i = 0; i < JOBS_PER_CLIENT; i++) {
        const res = await request(`${svc.url}/download/mp4`, {
          method: 'POST',
          dispatcher,
          headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
          body: JSON.stringify({ url }),
        });
        const body = (await res.body.json()) as { job_id?: string; code?: string };
        outcomes.push({ status: res.statusCode, code: body.code, jobId: body.job_id, ip });
      }
    }),
  );
  await dispatcher.close();
  return outcomes;
}

describe('load: 1,000 submissions from 50 concurrent clients', () => {
  let origin: Origin;
  let mp4: Mp4Fixture;
  let release: () => void = () => {};
  let gate: Promise<void>;

  before(async () => {
    mp4 = await makeMp4({ seconds: 1 });
    origin = await startOrigin();
    origin.route('/v.mp4', async (_req, _res, ctx) => {
      await gate;
      await ctx.sendFile(mp4.file);
    });
  });
  after(async () => {
    release();
    await closeAllServices();
    await origin.close();
  });

  async function run(overrides: Record<string, unknown>) {
    gate = new Promise((r) => {
      release = r;
    });
    const svc = await startTestService(
      {
        trust_proxy: true,
        rate_limit_per_minute: 0,
        max_concurrent_downloads: 4,
        connection_timeout: 60,
        ...overrides,
      },
      { listen: true },
    );
    const outcomes = await storm(svc, `${origin.url}/v.mp4`);
    assert.equal(outcomes.length, CLIENTS * JOBS_PER_CLIENT);
    const admitted = outcomes.filter((o) => o.status === 200);
    const ids = admitted.map((o) => o.jobId!);
    assert.equal(new Set(ids).size, ids.length, 'no job id handed out twice');
    assert.equal(
      svc.store.list({ limit: 1, offset: 0 }).total,
      admitted.length,
      'exactly the admitted jobs are stored',
    );
    release();
    for (const id of ids) {
      const job = await svc.waitFor(id, ['COMPLETED', 'FAILED', 'CANCELLED']);
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
    }
    await svc.close();
    return { outcomes, admitted };
  }

  it('admits exactly max_jobs_per_ip jobs per IP, refusing the rest with 429, and completes every admitted job', async () => {
    const { outcomes, admitted } = await run({ max_jobs_per_ip: 5, max_queue_size: 1000 });
    assert.equal(admitted.length, IPS * 5);
    for (let i = 0; i < IPS; i++) {
      assert.equal(admitted.filter((o) => o.ip === `198.51.100.${i}`).length, 5, `IP ${i}`);
    }
    const refused = outcomes.filter((o) => o.status !== 200);
    assert.ok(refused.every((o) => o.status === 429 && o.code === 'GABE_ERR_IP_LIMIT'));
  });

  it('admits exactly max_queue_size pending jobs plus the running ones, refusing the rest with 503', async () => {
    const { outcomes, admitted } = await run({ max_jobs_per_ip: 0, max_queue_size: 30 });
    assert.equal(admitted.length, 30 + 4);
    const refused = outcomes.filter((o) => o.status !== 200);
    assert.ok(refused.every((o) => o.status === 503 && o.code === 'GABE_ERR_QUEUE_FULL'));
  });
});
