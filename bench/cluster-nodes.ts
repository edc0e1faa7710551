/**
 * The cluster under test, started as an operator would: redis-server, an S3 server (s3rver) in its own
 * process, `gabe serve --no-worker` and `gabe worker` processes of the built CLI (dist/cli.js), through
 * the same harness as test/e2e/cluster.test.ts. Also: CPU seconds over a set of processes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Cluster, type ClusterProcess, startCluster } from '../test/helpers/cluster.js';
import { type S3Process, startS3Process } from '../test/helpers/s3-process.js';
import { cpuSeconds, round, TreeSampler } from './measure.js';
import { GABE_CLI } from './tools.js';

export interface BenchCluster {
  cluster: Cluster;
  api: ClusterProcess;
  s3: S3Process;
  redisPid: number;
  /** `count` workers, each `gabe worker --concurrency <concurrency>`, named `<tag>-1`…; resolved once all run. */
  startWorkers(tag: string, count: number, concurrency: number): Promise<ClusterProcess[]>;
  stop(workers: ClusterProcess[]): Promise<void>;
  close(): Promise<void>;
}

export const pidOf = (p: ClusterProcess): number => p.run.child.pid!;

export async function startBenchCluster(): Promise<BenchCluster> {
  const s3 = await startS3Process();
  let cluster: Cluster | null = null;
  try {
    cluster = await startCluster({
      entry: [GABE_CLI],
      s3: s3.config,
      // Production timings, not the harness's quick takeover for tests: checks every second cost Redis CPU.
      config: { queue: { lock_duration_ms: 30_000, stalled_interval_ms: 30_000 } },
    });
    const api = await cluster.startApi('api');
    const c = cluster;
    return {
      cluster: c,
      api,
      s3,
      redisPid: c.redis.pid!,
      startWorkers: (tag, count, concurrency) =>
        Promise.all(Array.from({ length: count }, (_, i) => c.startWorker(`${tag}-${i + 1}`, concurrency))),
      stop: async (workers) => {
        await Promise.all(workers.map((w) => w.stop()));
      },
      async close() {
        await c.close();
        await s3.stop();
      },
    };
  } catch (err) {
    await cluster?.close();
    await s3.stop();
    throw err;
  }
}

/** CPU seconds (utime + stime, and the children they waited for) of named processes over a window. */
export function cpuMeter(pids: Record<string, number>): { stop(): Record<string, number> } {
  const start = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid) ?? 0]));
  return {
    stop() {
      const out: Record<string, number> = {};
      for (const [k, pid] of Object.entries(pids)) {
        out[k] = round((cpuSeconds(pid) ?? start[k]!) - start[k]!, 2);
      }
      return out;
    },
  };
}

/** Peak RSS (MB) of each process tree, sampled every 50 ms. */
export function rssMeter(pids: Record<string, number>): { stop(): Record<string, number> } {
  const samplers = Object.entries(pids).map(([k, pid]) => [k, new TreeSampler(pid, true).start(50)] as const);
  return {
    stop() {
      const out: Record<string, number> = {};
      for (const [k, s] of samplers) {
        s.stop();
        out[k] = round(s.peakBytes / (1024 * 1024), 1);
      }
      return out;
    },
  };
}

/** What the worker's log says of the upload of `jobId`'s file to S3 (its line "uploaded to S3"). */
export interface UploadLog {
  /** The upload's time once the file was finished: all of it, or the rest of one begun early. */
  seconds: number;
  /** Of it, CompleteMultipartUpload (only for an upload begun while the file was written). */
  complete_s: number | null;
  /** Parts sent while the file was written (null: uploaded whole after it). */
  early_parts: number | null;
}

export function uploadLog(worker: ClusterProcess, jobId: string): UploadLog | null {
  let files: string[] = [];
  try {
    files = readdirSync(worker.logDir).filter((f) => f.startsWith('video_downloader.log'));
  } catch {
    return null;
  }
  for (const f of files) {
    for (const line of readFileSync(path.join(worker.logDir, f), 'utf8').split('\n')) {
      if (!line.includes('"uploaded to S3"') || !line.includes(jobId)) continue;
      const entry = JSON.parse(line) as {
        job_id?: string;
        seconds?: number;
        complete_s?: number;
        early_parts?: number;
      };
      if (entry.job_id !== jobId || typeof entry.seconds !== 'number') continue;
      return {
        seconds: entry.seconds,
        complete_s: entry.complete_s ?? null,
        early_parts: entry.early_parts ?? null,
      };
    }
  }
  return null;
}
