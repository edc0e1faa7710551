/**
 * The hostile-origin suite's measure of "no origin can hold the service": a job against a misbehaving
 * origin must end by itself with a clear error, its CPU and RSS must stay bounded, and the API must go
 * on answering /health within 100 ms the whole time (the service shares this process's event loop, so a
 * parser that spins or a flood that is never cut off shows up as a slow /health).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Job } from '../../src/jobs/types.js';
import type { TestService } from './service.js';

/** /health's answer time the suite allows, ms (the bound). */
export const HEALTH_BUDGET_MS = 100;

export interface HealthWatch {
  /** Stops polling; resolves with the slowest answer and how many were taken. */
  stop(): Promise<{ maxMs: number; count: number; slow: number[] }>;
}

function timedGet(url: string): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - start));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/**
 * Polls GET /health every `everyMs` over a fresh connection, one request at a time, and records how
 * long each took to answer.
 */
export function watchHealth(baseUrl: string, everyMs = 25): HealthWatch {
  let running = true;
  const times: number[] = [];
  const loop = (async () => {
    while (running) {
      times.push(await timedGet(`${baseUrl}/health`));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return {
        maxMs: Math.max(0, ...times),
        count: times.length,
        slow: times.filter((t) => t > HEALTH_BUDGET_MS).map((t) => Math.round(t)),
      };
    },
  };
}

export interface HostileJobExpectation {
  /** The job must end FAILED with this error_code (else it must complete). */
  code?: string;
  /** What the job's `error` must say. */
  error?: RegExp;
  /** The job must end within this many ms of its submission (the point: it ends by itself). */
  endsWithinMs: number;
  /** CPU time (user + system) of this process while the job ran, at most, ms. */
  maxCpuMs?: number;
  /** Growth of this process's RSS over its level at submission, at most, MB. */
  maxRssGrowthMb?: number;
  /** Checks /health throughout (default true). */
  health?: boolean;
}

export interface HostileJobOutcome {
  job: Job;
  elapsedMs: number;
  cpuMs: number;
  rssGrowthMb: number;
  health: { maxMs: number; count: number; slow: number[] };
}

/**
 * Submits `body` to `endpoint` over HTTP (the service must listen), waits for the job to end, and
 * asserts what `expect` says about how it ended and what it cost.
 */
export async function runHostileJob(
  svc: TestService,
  body: Record<string, unknown>,
  expect: HostileJobExpectation,
  endpoint: '/download/' | '/download/mp4' = '/download/',
): Promise<HostileJobOutcome> {
  assert.ok(svc.url, 'the service must be started with listen: true');
  if (typeof global.gc === 'function') global.gc();
  const rss0 = process.memoryUsage.rss();
  let rssPeak = rss0;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  }, 20);
  const health = expect.health === false ? null : watchHealth(svc.url);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let job: Job;
  try {
    const res = await fetch(`${svc.url}${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as { job_id?: string };
    assert.equal(res.status, 200, `submission refused: ${JSON.stringify(answer)}`);
    job = await svc.waitFor(
      answer.job_id!,
      ['COMPLETED', 'FAILED', 'CANCELLED'],
      expect.endsWithinMs + 5_000,
    );
  } finally {
    clearInterval(sampler);
  }
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const outcome: HostileJobOutcome = {
    job,
    elapsedMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssGrowthMb: (rssPeak - rss0) / (1024 * 1024),
    health: (await health?.stop()) ?? { maxMs: 0, count: 0, slow: [] },
  };
  const what = JSON.stringify({
    ...outcome,
    job: { status: job.status, error: job.error, code: job.error_code },
  });
  if (expect.code) {
    assert.equal(job.status, 'FAILED', what);
    assert.equal(job.error_code, expect.code, what);
  } else {
    assert.equal(job.status, 'COMPLETED', what);
  }
  if (expect.error) assert.match(job.error ?? '', expect.error, what);
  assert.ok(elapsedMs <= expect.endsWithinMs, `the job took ${Math.round(elapsedMs)} ms: ${what}`);
  if (expect.maxCpuMs !== undefined)
    assert.ok(outcome.cpuMs <= expect.maxCpuMs, `CPU ${outcome.cpuMs} ms: ${what}`);
  if (expect.maxRssGrowthMb !== undefined)
    assert.ok(outcome.rssGrowthMb <= expect.maxRssGrowthMb, `RSS +${outcome.rssGrowthMb} MB: ${what}`);
  if (health) {
    assert.ok(outcome.health.count > 0, 'no /health answer was seen');
    assert.deepEqual(outcome.health.slow, [], `/health answered slower than ${HEALTH_BUDGET_MS} ms: ${what}`);
  }
  return outcome;
}
