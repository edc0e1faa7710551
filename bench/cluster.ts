/**
 * `npm run bench -- --cluster`: Gabe's cluster mode (Redis + S3) on this machine, against the bench's
 * throttled origin and HLS content. bench/run.ts hands over here when it sees `--cluster`.
 *
 * - Throughput: `--jobs` (8) HLS jobs submitted at once to one `gabe serve --no-worker`, run by 1, 2 and
 *   4 `gabe worker` processes sharing `--slots` (8) job slots between them.
 * - Overhead: one HLS job through embedded `gabe serve` and through the cluster, alternated.
 *
 *   options: --segments 300  --rounds 3  --workers 1,2,4  --jobs 8  --slots 8
 *            --latency-ms 30  --rate-mbit 50  --no-build  --timeout-s S
 *            --only overhead|throughput (one phase; the other's table is left out)
 * See bench/README.md#cluster.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runEmbeddedThroughput, runThroughput, type ThroughputSample } from './cluster-batch.js';
import { type BenchCluster, startBenchCluster } from './cluster-nodes.js';
import { clusterMarkdown, overheadTarget, summariseOverhead, summariseThroughput } from './cluster-report.js';
import { type RunContext, runClusterSingle, runEmbeddedSingle, type SingleSample } from './cluster-runs.js';
import { ensureHls } from './content.js';
import { loadAverage, machineFacts, round } from './measure.js';
import { startOriginProcess } from './origin-process.js';
import { build, startGabeServe } from './serve.js';
import { GABE_CLI, onPath, toolVersions } from './tools.js';

const BENCH = path.resolve('bench');
const CACHE = path.join(BENCH, '.cache');
const RESULTS = path.join(BENCH, 'results');

export async function runClusterBench(argv: string[]): Promise<number> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      cluster: { type: 'boolean', default: true },
      segments: { type: 'string', default: '300' },
      rounds: { type: 'string', default: '3' },
      workers: { type: 'string', default: '1,2,4' },
      jobs: { type: 'string', default: '8' },
      slots: { type: 'string', default: '8' },
      'latency-ms': { type: 'string', default: '30' },
      'rate-mbit': { type: 'string', default: '50' },
      'no-build': { type: 'boolean', default: false },
      'timeout-s': { type: 'string', default: '300' },
      only: { type: 'string' },
    },
  });
  const only = args.only;
  if (only !== undefined && only !== 'overhead' && only !== 'throughput') {
    throw new Error(`--only takes overhead or throughput, not ${only}`);
  }
  const started = performance.now();
  const log = (s: string) =>
    process.stderr.write(
      `[cluster ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`,
    );
  const rounds = Number(args.rounds);
  const workerCounts = args.workers.split(',').map(Number);
  const jobs = Number(args.jobs);
  const slots = Number(args.slots);
  const latencyMs = Number(args['latency-ms']);
  const rateMbit = Number(args['rate-mbit']);

  if (!onPath('redis-server')) throw new Error('redis-server is not on PATH (apt-get install redis-server)');
  if (!onPath('ffmpeg')) throw new Error('ffmpeg is needed to make the content');
  if (!args['no-build']) build(log);
  if (!existsSync(GABE_CLI)) throw new Error(`${GABE_CLI} is missing; run npm run build`);
  const tmp = path.join(RESULTS, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const hls = await ensureHls(CACHE, Number(args.segments), log);
  log(`content: HLS ${hls.segments} × 1 s segments, ${(hls.bytes / 1e6).toFixed(1)} MB`);
  const loadStart = loadAverage();

  const origin = await startOriginProcess({ root: CACHE, latencyMs, rateMbit });
  let bc: BenchCluster | null = null;
  const single: SingleSample[] = [];
  const throughput: ThroughputSample[] = [];
  try {
    bc = await startBenchCluster();
    const ctx: RunContext = {
      origin,
      url: origin.url + hls.urlPath,
      reference: { sha256: null },
      timeoutMs: Number(args['timeout-s']) * 1000,
      tmp,
      log,
    };
    log(`cluster up: API ${bc.api.url}, ${bc.cluster.redis.url}, S3 ${bc.s3.config.endpoint}`);
    if (only !== 'throughput') single.push(...(await overheadPhase(ctx, bc, rounds)));
    if (only !== 'overhead') {
      throughput.push(...(await throughputPhase(ctx, bc, rounds, workerCounts, slots, jobs)));
    }
  } finally {
    await bc?.close();
    origin.stop();
  }

  const tp = summariseThroughput(throughput);
  const oh = summariseOverhead(single);
  const target = overheadTarget(oh);
  const machine = { ...machineFacts(), loadavg_start: loadStart, loadavg_end: loadAverage() };
  const md = clusterMarkdown({ machine, latencyMs, rateMbit, hls, rounds, jobs, slots, tp, oh, target });
  process.stdout.write(`\n${md}\n\n`);

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const result = {
    kind: 'gabe-bench-cluster',
    version: 1,
    created_at: new Date().toISOString(),
    options: {
      segments: hls.segments,
      rounds,
      workers: workerCounts,
      jobs,
      slots,
      latency_ms: latencyMs,
      rate_mbit: rateMbit,
      only: only ?? null,
    },
    machine,
    tools: { ffmpeg: toolVersions().ffmpeg ?? null, 'redis-server': redisVersion() },
    content: hls,
    durations_s: { total: round((performance.now() - started) / 1000, 1) },
    throughput: tp,
    overhead: oh,
    targets: [target],
    samples: { throughput, single },
    markdown: md,
  };
  const json = `${JSON.stringify(result, null, 2)}\n`;
  for (const name of [`cluster-${stamp}`, 'cluster-latest']) {
    writeFileSync(path.join(RESULTS, `${name}.json`), json);
    writeFileSync(path.join(RESULTS, `${name}.md`), `${md}\n`);
  }
  log(`wrote bench/results/cluster-${stamp}.{json,md} and cluster-latest.{json,md}`);
  const failed = throughput.some((s) => s.failures.length > 0) || single.some((s) => !s.verified);
  return failed ? 1 : 0;
}

/**
 * One job at a time, embedded and cluster alternated. Both paths are long-running and warmed by one
 * unmeasured job, as servers are; the embedded warm-up's output is the reference for every check.
 */
async function overheadPhase(ctx: RunContext, bc: BenchCluster, rounds: number): Promise<SingleSample[]> {
  const out: SingleSample[] = [];
  const [worker] = await bc.startWorkers('worker', 1, 5);
  const embedded = await startGabeServe(path.join(ctx.tmp, 'embedded'));
  try {
    for (const s of [
      await runEmbeddedSingle(ctx, embedded, 0),
      await runClusterSingle(ctx, bc, worker!, 0),
    ]) {
      if (!s.verified) throw new Error(`the ${s.mode} warm-up job failed: ${s.note}`);
    }
    for (let r = 1; r <= rounds; r++) {
      // Alternated so neither path always runs first.
      const order = r % 2 === 1 ? (['embedded', 'cluster'] as const) : (['cluster', 'embedded'] as const);
      for (const mode of order) {
        const s =
          mode === 'embedded'
            ? await runEmbeddedSingle(ctx, embedded, r)
            : await runClusterSingle(ctx, bc, worker!, r);
        out.push(s);
        const complete =
          s.upload_complete_s === null ? '' : ` (S3 complete ${s.upload_complete_s.toFixed(3)} s)`;
        const early = s.early_parts === null ? '' : `, ${s.early_parts} parts sent early`;
        const upload = s.upload_s === null ? '' : `, upload ${s.upload_s.toFixed(3)} s${complete}${early}`;
        ctx.log(
          `single r${r} ${mode}: ${s.wall_s.toFixed(3)} s wall (POST → started ${s.queued_s?.toFixed(3) ?? '?'} s${upload}), ${s.cpu_s} s CPU, other load ${s.other_cores ?? '?'} cores — ${s.verified ? 'ok' : `FAILED ${s.note}`}`,
        );
      }
    }
  } finally {
    await embedded.stop();
    rmSync(embedded.dir, { recursive: true, force: true });
    await bc.stop([worker!]);
  }
  return out;
}

/** Batches on the embedded baseline (0) and on each worker count, the order turning by one each round. */
async function throughputPhase(
  ctx: RunContext,
  bc: BenchCluster,
  rounds: number,
  workerCounts: number[],
  slots: number,
  jobs: number,
): Promise<ThroughputSample[]> {
  const out: ThroughputSample[] = [];
  const setups = [0, ...workerCounts];
  for (let r = 1; r <= rounds; r++) {
    for (const n of setups.map((_, i) => setups[(i + r - 1) % setups.length]!)) {
      const s =
        n === 0
          ? await runEmbeddedThroughput(ctx, slots, jobs, r)
          : await runThroughput(ctx, bc, n, slots, jobs, r);
      out.push(s);
      const who = n === 0 ? `embedded × ${slots}` : `${n} × ${s.concurrency_per_worker}`;
      ctx.log(
        `throughput r${r} ${who}: ${s.wall_s.toFixed(2)} s wall, ${s.mb_per_s} MB/s, CPU ${s.cpu_s.total} s (gabe ${s.cpu_s.gabe}, redis ${s.cpu_s.redis}, s3 ${s.cpu_s.s3}), RSS ${s.peak_rss_worker_mb.join('/')} MB, jobs ${Object.values(s.jobs_per_worker).join('/') || '–'}, ${s.verified_jobs}/${s.jobs} verified${s.failures.length ? ` — FAILED: ${s.failures.join('; ')}` : ''}`,
      );
    }
  }
  return out;
}

function redisVersion(): string | null {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim();
  } catch {
    return null;
  }
}
