/**
 * The single-job runs of the cluster bench: one HLS job through embedded `gabe serve` or through the
 * cluster (the Redis + S3 overhead), and what every run shares: outputs checked byte for byte against
 * embedded mode's, through `GET /job/{id}/file`. Batches are in cluster-batch.ts.
 */
import path from 'node:path';
import type { ClusterProcess } from '../test/helpers/cluster.js';
import { deleteJob, fetchFile, queuedSeconds, submitJob, waitAll } from './cluster-jobs.js';
import { type BenchCluster, cpuMeter, pidOf, uploadLog } from './cluster-nodes.js';
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
  /** Of upload_s, S3's CompleteMultipartUpload, when the upload began while the file was written. */
  upload_complete_s: number | null;
  /** Parts the worker sent while the file was written (null: none began early). */
  early_parts: number | null;
  other_cores: number | null;
  note: string;
}

export const sum = (xs: number[]) =>
  round(
    xs.reduce((a, b) => a + b, 0),
    2,
  );

/** Checks a cluster job's file against the reference and deletes the job (and its S3 object). */
export async function verifyAndDelete(api: string, id: string, ref: string | null): Promise<string | null> {
  const file = await fetchFile(api, id);
  await deleteJob(api, id);
  if (file.status !== 200) return `GET /job/${id}/file answered ${file.status}`;
  if (!ref) return `job ${id}: no embedded output to compare with`;
  if (file.sha256 !== ref) return `job ${id}: the file differs from embedded mode's`;
  return null;
}

/** The cluster's own processes as named pids for the meters. */
export function clusterPids(bc: BenchCluster, workers: ClusterProcess[]): Record<string, number> {
  const pids: Record<string, number> = { api: pidOf(bc.api), redis: bc.redisPid, s3: bc.s3.pid };
  for (const w of workers) pids[w.name] = pidOf(w);
  return pids;
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
  const s = await submitJob(server.url, 'hls', ctx.url);
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
  const s = await submitJob(bc.api.url, 'hls', ctx.url);
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
    ...uploadFields(uploadLog(worker, s.id)),
  };
}

function uploadFields(u: ReturnType<typeof uploadLog>) {
  return {
    upload_s: u?.seconds ?? null,
    upload_complete_s: u?.complete_s ?? null,
    early_parts: u?.early_parts ?? null,
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
    upload_complete_s: null,
    early_parts: null,
    other_cores: otherCores,
    note,
  };
}
