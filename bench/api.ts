/**
 * `npm run bench:api`: API throughput of `gabe serve` (a child process, as in production) with autocannon.
 *
 * 1. GET /job/{id} over a store of 10,000 finished jobs, a random id per request.
 * 2. POST /download/mp4 admission: validation, URL check, the SQLite admission transaction and the
 *    answer. Jobs point at an origin that accepts connections and never answers, and only one job may
 *    run, so everything admitted stays PENDING and no download work is mixed into the numbers.
 *
 * Options: --jobs 10000  --connections 50  --duration 10 (seconds per test)  --warmup 2  --no-build
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { SqliteJobStore } from '../src/jobs/store.js';
import { backgroundMeter, cpuSeconds, loadAverage, MB, machineFacts, round, TreeSampler } from './measure.js';
import { build, postJson, startGabeServe } from './serve.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '10000' },
    connections: { type: 'string', default: '50' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    'no-build': { type: 'boolean', default: false },
  },
});

const RESULTS = path.resolve('bench/results');
const DIR = path.join(RESULTS, 'tmp', 'api');
const log = (s: string) => process.stderr.write(`[bench:api] ${s}\n`);
const JOBS = Number(args.jobs);
const CONNECTIONS = Number(args.connections);
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
/** 5,000 GET /job/{id} per second on 2 cores (the issue's target). */
const GET_TARGET = 5000;

/** Fills a fresh database with finished jobs through the store's own API (so schema changes follow). */
function seed(file: string, n: number): string[] {
  const store = new SqliteJobStore(file);
  const ids: string[] = [];
  try {
    store.db.transaction(() => {
      for (let i = 0; i < n; i++) {
        const url = `https://cdn.example.com/videos/${i}/index.m3u8`;
        const job = store.admit(
          {
            type: 'hls',
            request: { url, video_name: `video ${i}` },
            clientIp: `10.0.${i % 250}.1`,
            videoName: `video ${i}`,
          },
          { maxQueueSize: Number.MAX_SAFE_INTEGER, maxJobsPerIp: 0 },
        );
        store.claimNext();
        store.transition(job.id, 'COMPLETED', {
          result: {
            status: 'completed',
            output_path: `/srv/gabe/downloads/video ${i}.mp4`,
            resolution: '1920x1080',
            video_name: `video ${i}`,
            original_url: url,
            file_size_mb: 241.3,
            file_size_bytes: 253_021_184,
            duration_seconds: 600,
            segment_count: 600,
            container: 'mp4',
          },
        });
        ids.push(job.id);
      }
    })();
  } finally {
    store.close();
  }
  return ids;
}

/** An origin that accepts TCP connections and never answers: admitted jobs wait instead of working. */
function stallServer(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        close() {
          for (const s of sockets) s.destroy();
          server.close();
        },
      });
    });
  });
}

interface ApiResult {
  name: string;
  requests_per_s: number;
  requests_total: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number; mean: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  status_codes: Record<string, number>;
  server_cpu_s: number | null;
  server_cpu_pct: number | null;
  /** Requests answered per CPU-second of the server: its capacity per core, less sensitive to other load. */
  requests_per_server_cpu_s: number | null;
  server_peak_rss_mb: number;
  /** autocannon's own CPU (this process), % of one core. */
  client_cpu_pct: number;
  /** Cores other processes on the machine kept busy during the test (noise). */
  other_cores_busy: number | null;
  duration_s: number;
  connections: number;
}

async function load(name: string, pid: number, opts: autocannon.Options): Promise<ApiResult> {
  if (WARMUP > 0) await autocannon({ ...opts, duration: WARMUP });
  const sampler = new TreeSampler(pid, true).start(100);
  const cpu0 = cpuSeconds(pid);
  const meter = backgroundMeter([]);
  const t0 = performance.now();
  const r = await autocannon({ ...opts, duration: DURATION });
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(pid);
  sampler.stop();
  const cpuServer = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
  const background = meter.stop(cpuServer);
  const codes: Record<string, number> = {};
  for (const [k, v] of Object.entries(r as unknown as Record<string, unknown>)) {
    const m = /^(\d)xx$/.exec(k);
    if (m && typeof v === 'number' && v > 0) codes[k] = v;
  }
  const cpu = cpuServer === null ? null : round(cpuServer, 2);
  return {
    name,
    requests_per_s: round(r.requests.average, 0),
    requests_total: r.requests.total,
    latency_ms: {
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
      mean: round(r.latency.average, 2),
    },
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    status_codes: codes,
    server_cpu_s: cpu,
    server_cpu_pct: cpu === null ? null : round((cpu / elapsed) * 100, 0),
    requests_per_server_cpu_s: cpu ? round(r.requests.total / cpu, 0) : null,
    server_peak_rss_mb: round(sampler.peakBytes / MB, 1),
    client_cpu_pct: round((background.harness_cpu_s / elapsed) * 100, 0),
    other_cores_busy: background.other_cores,
    duration_s: DURATION,
    connections: CONNECTIONS,
  };
}

async function main(): Promise<void> {
  if (!args['no-build']) build(log);
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const t = performance.now();
  const ids = seed(path.join(DIR, 'gabe.db'), JOBS);
  log(`seeded ${ids.length} COMPLETED jobs in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const stall = await stallServer();
  const server = await startGabeServe(DIR, {
    max_queue_size: 100_000_000,
    max_jobs_per_ip: 0,
    max_concurrent_downloads: 1,
    // The one running job waits on the stalled origin for the whole test instead of failing and
    // letting the next one start.
    connection_timeout: 3600,
    max_retries: 0,
    clean_jobs_after_days: 0,
    // Admission itself is measured, not the per-client submission limit in front of it.
    rate_limit_per_minute: 0,
  });
  const results: ApiResult[] = [];
  try {
    log(
      `gabe serve (pid ${server.pid}) on ${server.url}; ${CONNECTIONS} connections, ${DURATION} s per test after ${WARMUP} s warm-up`,
    );
    const probe = await fetch(`${server.url}/job/${ids[0]}`);
    if (probe.status !== 200)
      throw new Error(`GET /job/{id} answered ${probe.status}: ${await probe.text()}`);

    results.push(
      await load('GET /job/{id}', server.pid, {
        url: server.url,
        connections: CONNECTIONS,
        requests: [
          {
            method: 'GET',
            setupRequest: (req) => ({ ...req, path: `/job/${ids[Math.floor(Math.random() * ids.length)]}` }),
          },
        ],
      }),
    );
    log(`GET /job/{id}: ${results[0]!.requests_per_s} req/s, p99 ${results[0]!.latency_ms.p99} ms`);

    const body = { url: `http://127.0.0.1:${stall.port}/video.mp4`, video_name: 'bench', type: 'mp4' };
    const answer = await postJson(`${server.url}/download/mp4`, body);
    if (answer.status !== 200)
      log(`note: POST /download/mp4 answers ${answer.status}: ${JSON.stringify(answer.json)}`);
    results.push(
      await load('POST /download/mp4', server.pid, {
        url: `${server.url}/download/mp4`,
        method: 'POST',
        connections: CONNECTIONS,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }),
    );
    log(`POST /download/mp4: ${results[1]!.requests_per_s} req/s, p99 ${results[1]!.latency_ms.p99} ms`);
  } finally {
    await server.stop();
    stall.close();
  }
  const admitted = new SqliteJobStore(path.join(DIR, 'gabe.db'));
  const counts = admitted.countByStatus();
  admitted.close();
  rmSync(DIR, { recursive: true, force: true });

  const machine = { ...machineFacts(), loadavg_end: loadAverage() };
  const get = results[0]!;
  const lines = [
    `Machine: ${machine.cpus} cores (${machine.cpu_model}), Node ${machine.node}; autocannon runs on the same machine (one process), ${CONNECTIONS} connections, ${DURATION} s per test after a ${WARMUP} s warm-up; ${JOBS} jobs stored.`,
    '',
    '| endpoint | req/s | p50 ms | p90 ms | p99 ms | errors | non-2xx | server CPU | req per server CPU-s | autocannon CPU | other load (cores) | server peak RSS MB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${r.name} | ${r.requests_per_s} | ${r.latency_ms.p50} | ${r.latency_ms.p90} | ${r.latency_ms.p99} | ${r.errors + r.timeouts} | ${r.non2xx} | ${r.server_cpu_pct ?? '–'} % | ${r.requests_per_server_cpu_s ?? '–'} | ${r.client_cpu_pct} % | ${r.other_cores_busy ?? '–'} | ${r.server_peak_rss_mb} |`,
    ),
    '',
    `Target: GET /job/{id} ≥ ${GET_TARGET} req/s → ${get.requests_per_s} req/s: ${get.requests_per_s >= GET_TARGET ? 'pass' : 'FAIL'}. Server CPU is % of one core; "req per server CPU-s" is what one fully available core would answer (the server's request work runs on one thread), which other load on the machine disturbs less than req/s.`,
    `Jobs in the store afterwards: ${Object.entries(counts)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}.`,
  ];
  const markdown = lines.join('\n');
  process.stdout.write(`\n${markdown}\n\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = {
    kind: 'gabe-bench-api',
    version: 1,
    created_at: new Date().toISOString(),
    options: { jobs: JOBS, connections: CONNECTIONS, duration_s: DURATION, warmup_s: WARMUP },
    machine,
    target: { get_job_req_per_s: GET_TARGET, pass: get.requests_per_s >= GET_TARGET },
    results,
    jobs_after: counts,
    markdown,
  };
  writeFileSync(path.join(RESULTS, `api-${stamp}.json`), `${JSON.stringify(out, null, 2)}\n`);
  writeFileSync(path.join(RESULTS, 'api-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
  log(`wrote bench/results/api-${stamp}.json and bench/results/api-latest.json`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:api: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
