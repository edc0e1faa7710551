/**
 * Throughput runs of the cluster bench: a batch of HLS jobs submitted at once, on N `gabe worker`
 * processes sharing the job slots, or on embedded `gabe serve` with the same slots as the baseline.
 * wall = first POST to the last COMPLETED; CPU per process over that window; peak RSS per process tree.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { type Finished, type Submitted, submitJob, waitAll } from './cluster-jobs.js';
import { type BenchCluster, cpuMeter, rssMeter } from './cluster-nodes.js';
import { clusterPids, type RunContext, sum, verifyAndDelete } from './cluster-runs.js';
import { backgroundMeter, round } from './measure.js';
import { startGabeServe } from './serve.js';

export interface ThroughputSample {
  mode: 'cluster' | 'embedded';
  /** Worker processes (embedded: 1, the server itself). */
  workers: number;
  concurrency_per_worker: number;
  round: number;
  jobs: number;
  ok_jobs: number;
  verified_jobs: number;
  wall_s: number;
  mb: number;
  mb_per_s: number;
  /** CPU seconds in the window. gabe = API + workers (embedded: the server); redis and s3 are 0 embedded. */
  cpu_s: Record<'gabe' | 'api' | 'workers' | 'redis' | 's3' | 'total', number>;
  /** Peak RSS of each process that runs jobs (embedded: the server). */
  peak_rss_worker_mb: number[];
  peak_rss_api_mb: number | null;
  /** Worker name → jobs its log says it started (cluster only). */
  jobs_per_worker: Record<string, number>;
  other_cores: number | null;
  failures: string[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Batch {
  submitted: Submitted[];
  finished: Finished[];
  wall_s: number;
  cpu: Record<string, number>;
  rss: Record<string, number>;
  mb: number;
  other_cores: number | null;
}

/** Submits `jobs` HLS jobs at once and measures until the last is final. */
async function runBatch(
  ctx: RunContext,
  api: string,
  pids: Record<string, number>,
  rssPids: Record<string, number>,
  jobs: number,
): Promise<Batch> {
  await sleep(500);
  await ctx.origin.stats(true);
  const cpu = cpuMeter(pids);
  const rss = rssMeter(rssPids);
  const meter = backgroundMeter([ctx.origin.child.pid!]);
  const submitted = await Promise.all(Array.from({ length: jobs }, () => submitJob(api, 'hls', ctx.url)));
  const finished = await waitAll(api, submitted, { pollMs: 100, timeoutMs: ctx.timeoutMs });
  const first = Math.min(...submitted.map((s) => s.sentAt));
  const last = Math.max(...finished.map((f) => f.seenAt));
  const used = cpu.stop();
  const peaks = rss.stop();
  const origin = await ctx.origin.stats(true);
  const background = meter.stop(sum(Object.values(used)));
  return {
    submitted,
    finished,
    wall_s: (last - first) / 1000,
    cpu: used,
    rss: peaks,
    mb: (origin?.bytes ?? 0) / 1e6,
    other_cores: background.other_cores,
  };
}

/** Every output fetched through the API, compared with the reference, then deleted. */
async function verifyAll(ctx: RunContext, api: string, finished: Finished[]) {
  const failures: string[] = [];
  let verified = 0;
  for (const f of finished) {
    if (f.job.status !== 'COMPLETED') {
      failures.push(`job ${f.id} ${f.job.status}: ${f.job.error_code ?? ''} ${f.job.error ?? ''}`);
      continue;
    }
    const problem = await verifyAndDelete(api, f.id, ctx.reference.sha256);
    if (problem) failures.push(problem);
    else verified++;
  }
  return { failures, verified, ok: finished.filter((f) => f.job.status === 'COMPLETED').length };
}

function sample(
  mode: ThroughputSample['mode'],
  b: Batch,
  v: Awaited<ReturnType<typeof verifyAll>>,
  rest: Pick<
    ThroughputSample,
    | 'workers'
    | 'concurrency_per_worker'
    | 'round'
    | 'cpu_s'
    | 'peak_rss_worker_mb'
    | 'peak_rss_api_mb'
    | 'jobs_per_worker'
  >,
): ThroughputSample {
  return {
    mode,
    ...rest,
    jobs: b.submitted.length,
    ok_jobs: v.ok,
    verified_jobs: v.verified,
    wall_s: round(b.wall_s, 3),
    mb: round(b.mb, 1),
    mb_per_s: round(b.mb / b.wall_s, 1),
    other_cores: b.other_cores,
    failures: v.failures,
  };
}

/** `jobs` at once on `workerCount` fresh workers with `totalSlots / workerCount` slots each. */
export async function runThroughput(
  ctx: RunContext,
  bc: BenchCluster,
  workerCount: number,
  totalSlots: number,
  jobs: number,
  roundNo: number,
): Promise<ThroughputSample> {
  const per = Math.max(1, Math.floor(totalSlots / workerCount));
  const label = `r${roundNo}-w${workerCount}`;
  const workers = await bc.startWorkers(label, workerCount, per);
  const pids = clusterPids(bc, workers);
  const rssPids = Object.fromEntries(Object.entries(pids).filter(([k]) => k !== 'redis' && k !== 's3'));
  const b = await runBatch(ctx, bc.api.url, pids, rssPids, jobs);
  await bc.stop(workers);
  const v = await verifyAll(ctx, bc.api.url, b.finished);
  const ran = bc.cluster.whereJobsRan();
  const perWorker: Record<string, number> = Object.fromEntries(workers.map((w) => [w.name, 0]));
  for (const s of b.submitted) {
    for (const name of ran.get(s.id) ?? []) perWorker[name] = (perWorker[name] ?? 0) + 1;
  }
  const workerCpu = sum(workers.map((w) => b.cpu[w.name] ?? 0));
  const api = b.cpu['api'] ?? 0;
  return sample('cluster', b, v, {
    workers: workerCount,
    concurrency_per_worker: per,
    round: roundNo,
    cpu_s: {
      gabe: sum([api, workerCpu]),
      api,
      workers: workerCpu,
      redis: b.cpu['redis'] ?? 0,
      s3: b.cpu['s3'] ?? 0,
      total: sum(Object.values(b.cpu)),
    },
    peak_rss_worker_mb: workers.map((w) => b.rss[w.name] ?? 0),
    peak_rss_api_mb: b.rss['api'] ?? null,
    jobs_per_worker: perWorker,
  });
}

/** The baseline: the same batch on one embedded `gabe serve` with `max_concurrent_downloads` = the slots. */
export async function runEmbeddedThroughput(
  ctx: RunContext,
  totalSlots: number,
  jobs: number,
  roundNo: number,
): Promise<ThroughputSample> {
  const server = await startGabeServe(path.join(ctx.tmp, `embedded-batch-${roundNo}`), {
    max_concurrent_downloads: totalSlots,
    max_jobs_per_ip: 0,
    rate_limit_per_minute: 0,
  });
  try {
    const pids = { server: server.pid };
    const b = await runBatch(ctx, server.url, pids, pids, jobs);
    const v = await verifyAll(ctx, server.url, b.finished);
    const cpu = b.cpu['server'] ?? 0;
    return sample('embedded', b, v, {
      workers: 1,
      concurrency_per_worker: totalSlots,
      round: roundNo,
      cpu_s: { gabe: cpu, api: cpu, workers: 0, redis: 0, s3: 0, total: cpu },
      peak_rss_worker_mb: [b.rss['server'] ?? 0],
      peak_rss_api_mb: null,
      jobs_per_worker: {},
    });
  } finally {
    await server.stop();
    rmSync(server.dir, { recursive: true, force: true });
  }
}
