/**
 * A whole cluster on this machine, as an operator would run it: a real redis-server, a real S3 server
 * (s3rver), and `gabe serve --no-worker` / `gabe worker` as separate processes of the real CLI, all
 * reading one config.json. Processes can be killed with SIGKILL to play a lost host.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../src/service/config.js';
import { type CliRun, gabe, runCli, waitForOutput } from './cli.js';
import { type RedisServer, startRedis } from './redis-server.js';
import { type S3Settings, startS3Server, type TestS3Server } from './s3-server.js';
import { tempDir } from './tmp.js';

export interface ClusterProcess {
  name: string;
  run: CliRun;
  /** API nodes: the base URL. */
  url: string;
  logDir: string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export interface Cluster {
  dir: string;
  redis: RedisServer;
  /** The S3 server the cluster started (null without S3, or when the caller passed its own). */
  s3: TestS3Server | null;
  config: Record<string, unknown>;
  startApi(name: string, env?: Record<string, string>): Promise<ClusterProcess>;
  startWorker(name: string, concurrency: number, env?: Record<string, string>): Promise<ClusterProcess>;
  /** job id → the worker names whose log says they started it, earliest first. */
  whereJobsRan(): Map<string, string[]>;
  /** The messages a process logged for a job, in order (from its video_downloader.log). */
  jobLog(name: string, jobId: string): string[];
  /** Every process started so far, running or not. */
  processes(): ClusterProcess[];
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** false: no S3; the storage.s3 settings of a server the caller runs (e.g. in its own process). */
  s3?: boolean | S3Settings;
  /** How to run the CLI: `[dist/cli.js]` runs the built bundle with plain node; default src/cli.ts via tsx. */
  entry?: string[];
  persistentRedis?: boolean;
  /** storage.s3 keys over the test server's. */
  s3Config?: Record<string, unknown>;
  /** config.json keys over the cluster's defaults. */
  config?: Partial<Record<keyof Config, unknown>>;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const dir = tempDir('gabe-cluster-');
  const redis = await startRedis({ persistent: options.persistentRedis ?? false });
  const s3 = options.s3 === false || typeof options.s3 === 'object' ? null : await startS3Server();
  const s3Settings = typeof options.s3 === 'object' ? options.s3 : s3?.config;
  const config: Record<string, unknown> = {
    allow_private_networks: true,
    connection_timeout: 5,
    temp_path: path.join(dir, 'temp'),
    output_path: path.join(dir, 'out'),
    max_jobs_per_ip: 0,
    rate_limit_per_minute: 0,
    ...options.config,
    queue: {
      redis_url: redis.url,
      lock_duration_ms: 3000,
      stalled_interval_ms: 1000,
      ...(options.config?.['queue'] as object),
    },
    ...(s3Settings ? { storage: { s3: { ...s3Settings, ...options.s3Config } } } : {}),
  };
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const processes: ClusterProcess[] = [];

  const spawnNode = async (name: string, args: string[], ready: RegExp, env: Record<string, string>) => {
    const logDir = path.join(dir, 'logs', name);
    const vars = { GABE_CONFIG: file, GABE_LOG_PATH: logDir, NODE_NO_WARNINGS: '1', ...env };
    const run = options.entry ? runCli(options.entry, args, vars) : gabe(args, vars);
    const exited = run.exit.then((code) => {
      throw new Error(`${name} exited (${code}) before it was ready:\n${run.output()}`);
    });
    const m = await Promise.race([waitForOutput(run.output, ready, 60_000), exited]);
    const proc: ClusterProcess = {
      name,
      run,
      url: m[1] ?? '',
      logDir,
      async kill9() {
        run.child.kill('SIGKILL');
        await run.exit;
      },
      async stop() {
        if (run.child.exitCode !== null || run.child.signalCode !== null) return;
        run.child.kill('SIGTERM');
        await run.exit;
      },
    };
    processes.push(proc);
    return proc;
  };

  return {
    dir,
    redis,
    s3,
    config,
    startApi: (name, env = {}) =>
      spawnNode(name, ['serve', '--no-worker', '--port', '0'], /listening on (http:\/\/\S+)/, env),
    startWorker: (name, concurrency, env = {}) =>
      spawnNode(name, ['worker', '--concurrency', String(concurrency)], /worker running/, env),
    processes: () => [...processes],
    jobLog(name, jobId) {
      const proc = processes.find((p) => p.name === name);
      if (!proc) return [];
      const lines: string[] = [];
      for (const f of logFiles(proc.logDir)) {
        for (const line of readFileSync(f, 'utf8').split('\n')) {
          if (!line.includes(jobId)) continue;
          const entry = JSON.parse(line) as { job_id?: string; msg?: string };
          if (entry.job_id === jobId && entry.msg) lines.push(entry.msg);
        }
      }
      return lines;
    },
    whereJobsRan() {
      // Sorted by the log lines' time, so a job taken over lists the worker that lost it first.
      const starts: { id: string; name: string; time: number }[] = [];
      for (const p of processes) {
        for (const f of logFiles(p.logDir)) {
          for (const line of readFileSync(f, 'utf8').split('\n')) {
            if (!line.includes('"job started"')) continue;
            const entry = JSON.parse(line) as { job_id?: string; time?: number };
            if (entry.job_id) starts.push({ id: entry.job_id, name: p.name, time: entry.time ?? 0 });
          }
        }
      }
      const out = new Map<string, string[]>();
      for (const s of starts.sort((a, b) => a.time - b.time))
        out.set(s.id, [...(out.get(s.id) ?? []), s.name]);
      return out;
    },
    async close() {
      await Promise.all(processes.map((p) => p.stop()));
      await s3?.close();
      await redis.stop();
    },
  };
}

/** A process's log files (the current one and rotated ones); none when it has not logged yet. */
function logFiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.startsWith('video_downloader.log'))
      .map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}
