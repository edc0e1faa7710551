/**
 * One measured run of the cluster bench: a batch of HLS jobs on N workers (throughput), or one job
 * through embedded `gabe serve` or through the cluster (the Redis + S3 overhead). Every output is
 * checked against the embedded one, byte for byte, through `GET /job/{id}/file`.
 */
import path from 'node:path';
import type { ClusterProcess } from '../test/helpers/cluster.js';
import { deleteJob, fetchFile, queuedSeconds, type Submitted, submitJob, waitAll } from './cluster-jobs.js';
import { type BenchCluster, cpuMeter, pidOf, rssMeter, uploadSeconds } from './cluster-nodes.js';
import { sha256File } from './content.js';
import { backgroundMeter, round } from './measure.js';
import type { OriginProcess } from './origin-process.js';
import type { GabeServer } from './serve.js';

export interface RunContext {
  origin: OriginProcess;
  /** The HLS stream every job downloads. */
  url: string;
  /** SHA-256 of embedded mode's output: set by the first embedded run, then checked against. */
  reference: { sha256: string | null };
  timeoutMs: number;
  tmp: string;
  log: (s: string) => void;
}

export interface ThroughputSample {
  workers: number;
  concurrency_per_worker: number;
  round: number;
  jobs: number;
  ok_jobs: number;
  verified_jobs: number;
  wall_s: number;
  mb: number;
  mb_per_s: number;
  /** CPU seconds in the window: api, workers (sum), redis, s3, total. */
  cpu_s: Record<'api' | 'workers' | 'redis' | 's3' | 'total', number>;
  peak_rss_worker_mb: number[];
  peak_rss_api_mb: number;
  /** Worker name → jobs its log says it started. */
  jobs_per_worker: Record<string, number>;
  other_cores: number | null;
  failures: string[];
}

export interface SingleSample {
  mode: 'embedded' | 'cluster';
  round: number;
  ok: boolean;
  verified: boolean;
  wall_s: number;
  /** Embedded: the server; cluster: API + worker + redis + S3 server. */
  cpu_s: number;
  /** The same per process. */
  cpu_by_process_s: Record<string, number>;
  /** POST → the job's started_at: admission and, in a cluster, the trip through the queue. */
  queued_s: number | null;
  /** Cluster: the upload to S3 as the worker's log times it (part of the wall). */
  upload_s: number | null;
  other_cores: number | null;
  note: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sum = (xs: number[]) =>
  round(
    xs.reduce((a, b) => a + b, 0),
    2,
  );

/** Checks a cluster job's file against the reference and deletes the job (and its S3 object). */
async function verifyAndDelete(api: string, id: string, ref: string | null): Promise<string | null> {
  const file = await fetchFile(api, id);
  await deleteJob(api, id);
  if (file.status !== 200) return `GET /job/${id}/file answered ${file.status}`;
  if (ref && file.sha256 !== ref) return `job ${id}: the file differs from embedded mode's`;
  return null;
}

/** The cluster's own processes as named pids for the meters. */
function clusterPids(bc: BenchCluster, workers: ClusterProcess[]): Record<string, number> {
  const pids: Record<string, number> = { api: pidOf(bc.api), redis: bc.redisPid, s3: bc.s3.pid };
  for (const w of workers) pids[w.name] = pidOf(w);
  return pids;
}

export async function runThroughput(
  ctx: RunContext,
  bc: BenchCluster,
  workerCount: number,
  totalSlots: number,
  jobs: number,
  roundNo: number,
): Promise<ThroughputSample> {
  const per = Math.max(1, Math.floor(totalSlots / workerCount));
  const workers = await bc.startWorkers(`r${roundNo}-w${workerCount}`, workerCount, per);
  await sleep(500);
  await ctx.origin.stats(true);
  const pids = clusterPids(bc, workers);
  const cpu = cpuMeter(pids);
  const rss = rssMeter(Object.fromEntries(Object.entries(pids).filter(([k]) => k !== 'redis' && k !== 's3')));
  const meter = backgroundMeter([ctx.origin.child.pid!]);
  const submitted: Submitted[] = await Promise.all(
    Array.from({ length: jobs }, (_, i) =>
      submitJob(bc.api.url, 'hls', ctx.url, `r${roundNo}-w${workerCount}-${i}`),
    ),
  );
  const finished = await waitAll(bc.api.url, submitted, { pollMs: 100, timeoutMs: ctx.timeoutMs });
  const first = Math.min(...submitted.map((s) => s.sentAt));
  const last = Math.max(...finished.map((f) => f.seenAt));
  const wall = (last - first) / 1000;
  const used = cpu.stop();
  const peaks = rss.stop();
  const originStats = await ctx.origin.stats(true);
  const workerCpu = sum(workers.map((w) => used[w.name] ?? 0));
  const total = sum(Object.values(used));
  const background = meter.stop(total);
  await bc.stop(workers);

  const failures: string[] = [];
  let verified = 0;
  const ok = finished.filter((f) => f.job.status === 'COMPLETED');
  for (const f of finished) {
    if (f.job.status !== 'COMPLETED') {
      failures.push(`job ${f.id} ${f.job.status}: ${f.job.error_code ?? ''} ${f.job.error ?? ''}`);
      continue;
    }
    const problem = await verifyAndDelete(bc.api.url, f.id, ctx.reference.sha256);
    if (problem) failures.push(problem);
    else verified++;
  }
  const ran = bc.cluster.whereJobsRan();
  const perWorker: Record<string, number> = Object.fromEntries(workers.map((w) => [w.name, 0]));
  for (const s of submitted)
    for (const name of ran.get(s.id) ?? []) perWorker[name] = (perWorker[name] ?? 0) + 1;
  const mb = (originStats?.bytes ?? 0) / 1e6;
  return {
    workers: workerCount,
    concurrency_per_worker: per,
    round: roundNo,
    jobs,
    ok_jobs: ok.length,
    verified_jobs: verified,
    wall_s: round(wall, 3),
    mb: round(mb, 1),
    mb_per_s: round(mb / wall, 1),
    cpu_s: {
      api: used['api'] ?? 0,
      workers: workerCpu,
      redis: used['redis'] ?? 0,
      s3: used['s3'] ?? 0,
      total,
    },
    peak_rss_worker_mb: workers.map((w) => peaks[w.name] ?? 0),
    peak_rss_api_mb: peaks['api'] ?? 0,
    jobs_per_worker: perWorker,
    other_cores: background.other_cores,
    failures,
  };
}

/**
 * One job through a long-running embedded `gabe serve` (SQLite, local file). Its output is hashed from
 * disk (the first run's hash is the reference), then the job is deleted with its file.
 */
export async function runEmbeddedSingle(
  ctx: RunContext,
  server: GabeServer,
  roundNo: number,
): Promise<SingleSample> {
  const cpu = cpuMeter({ server: server.pid });
  const meter = backgroundMeter([ctx.origin.child.pid!]);
  const s = await submitJob(server.url, 'hls', ctx.url, `single-${roundNo}`);
  const [f] = await waitAll(server.url, [s], { pollMs: 50, timeoutMs: ctx.timeoutMs });
  const byProcess = cpu.stop();
  const background = meter.stop(byProcess['server']!);
  const wall = (f!.seenAt - s.sentAt) / 1000;
  const ok = f!.job.status === 'COMPLETED';
  let note = '';
  if (!ok) note = `job ${f!.job.status}: ${f!.job.error_code} ${f!.job.error}`;
  else {
    const sha = await sha256File(path.resolve(server.dir, f!.job.result!.output_path));
    ctx.reference.sha256 ??= sha;
    if (sha !== ctx.reference.sha256) note = 'output differs from the first embedded run';
    await deleteJob(server.url, s.id);
  }
  return {
    ...single('embedded', roundNo, ok, note, wall, byProcess, background.other_cores),
    queued_s: queuedSeconds(f!),
  };
}

/** One job through the cluster's API node and one idle worker; the wall includes the upload to S3. */
export async function runClusterSingle(
  ctx: RunContext,
  bc: BenchCluster,
  worker: ClusterProcess,
  roundNo: number,
): Promise<SingleSample> {
  const cpu = cpuMeter(clusterPids(bc, [worker]));
  const meter = backgroundMeter([ctx.origin.child.pid!]);
  const s = await submitJob(bc.api.url, 'hls', ctx.url, `single-${roundNo}`);
  const [f] = await waitAll(bc.api.url, [s], { pollMs: 50, timeoutMs: ctx.timeoutMs });
  const byProcess = cpu.stop();
  const background = meter.stop(sum(Object.values(byProcess)));
  const wall = (f!.seenAt - s.sentAt) / 1000;
  const ok = f!.job.status === 'COMPLETED';
  const note = ok
    ? ((await verifyAndDelete(bc.api.url, s.id, ctx.reference.sha256)) ?? '')
    : `job ${f!.job.status}: ${f!.job.error_code} ${f!.job.error}`;
  return {
    ...single('cluster', roundNo, ok, note, wall, byProcess, background.other_cores),
    queued_s: queuedSeconds(f!),
    upload_s: uploadSeconds(worker, s.id),
  };
}

function single(
  mode: SingleSample['mode'],
  roundNo: number,
  ok: boolean,
  note: string,
  wall: number,
  cpu: Record<string, number>,
  otherCores: number | null,
): SingleSample {
  return {
    mode,
    round: roundNo,
    ok,
    verified: ok && note === '',
    wall_s: round(wall, 3),
    cpu_s: sum(Object.values(cpu)),
    cpu_by_process_s: cpu,
    queued_s: null,
    upload_s: null,
    other_cores: otherCores,
    note,
  };
}
