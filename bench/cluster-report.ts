/** The cluster bench's samples as medians and markdown tables, with the overhead target's verdict. */
import type { ThroughputSample } from './cluster-batch.js';
import type { SingleSample } from './cluster-runs.js';
import type { HlsContent } from './content.js';
import { median, round } from './measure.js';
import { type Target, targetTable } from './report.js';

export interface ThroughputSummary {
  mode: ThroughputSample['mode'];
  workers: number;
  concurrency_per_worker: number;
  runs: number;
  ok_runs: number;
  jobs_verified: string;
  wall_s: number | null;
  wall_min_s: number | null;
  wall_max_s: number | null;
  mb: number | null;
  mb_per_s: number | null;
  cpu_s: Record<keyof ThroughputSample['cpu_s'], number | null>;
  peak_rss_worker_max_mb: number | null;
  peak_rss_api_max_mb: number | null;
  /** Median over runs of the jobs each worker started, busiest first. */
  jobs_per_worker: number[];
  other_cores: number | null;
}

export interface OverheadSummary {
  mode: SingleSample['mode'];
  runs: number;
  ok_runs: number;
  wall_s: number | null;
  wall_min_s: number | null;
  wall_max_s: number | null;
  cpu_s: number | null;
  /** Median CPU seconds per process (cluster: api, the worker, redis, s3). */
  cpu_by_process_s: Record<string, number | null>;
  queued_s: number | null;
  upload_s: number | null;
  upload_complete_s: number | null;
  early_parts: number | null;
  other_cores: number | null;
}

const med = (xs: number[], digits = 2) => {
  const m = median(xs);
  return m === null ? null : round(m, digits);
};
const nonNull = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
const fmt = (n: number | null | undefined, digits = 2) => (n == null ? '–' : n.toFixed(digits));
const okRun = (s: ThroughputSample) => s.failures.length === 0 && s.verified_jobs === s.jobs;

export function summariseThroughput(samples: ThroughputSample[]): ThroughputSummary[] {
  const keys = [...new Set(samples.map((s) => `${s.mode} ${s.workers}`))].sort((a, b) =>
    a.startsWith('embedded')
      ? -1
      : b.startsWith('embedded')
        ? 1
        : Number(a.split(' ')[1]) - Number(b.split(' ')[1]),
  );
  return keys.map((key) => {
    const all = samples.filter((s) => `${s.mode} ${s.workers}` === key);
    const { mode, workers } = all[0]!;
    const ok = all.filter(okRun);
    const walls = ok.map((s) => s.wall_s);
    const cpu = (k: keyof ThroughputSample['cpu_s']) => med(ok.map((s) => s.cpu_s[k]));
    const apiPeaks = nonNull(ok.map((s) => s.peak_rss_api_mb));
    const spread = ok.map((s) => Object.values(s.jobs_per_worker).sort((a, b) => b - a));
    return {
      mode,
      workers,
      concurrency_per_worker: all[0]!.concurrency_per_worker,
      runs: all.length,
      ok_runs: ok.length,
      jobs_verified: `${all.reduce((n, s) => n + s.verified_jobs, 0)}/${all.reduce((n, s) => n + s.jobs, 0)}`,
      wall_s: med(walls),
      wall_min_s: walls.length ? Math.min(...walls) : null,
      wall_max_s: walls.length ? Math.max(...walls) : null,
      mb: med(
        ok.map((s) => s.mb),
        1,
      ),
      mb_per_s: med(
        ok.map((s) => s.mb_per_s),
        1,
      ),
      cpu_s: {
        gabe: cpu('gabe'),
        api: cpu('api'),
        workers: cpu('workers'),
        redis: cpu('redis'),
        s3: cpu('s3'),
        total: cpu('total'),
      },
      peak_rss_worker_max_mb: ok.length ? Math.max(...ok.flatMap((s) => s.peak_rss_worker_mb)) : null,
      peak_rss_api_max_mb: apiPeaks.length ? Math.max(...apiPeaks) : null,
      jobs_per_worker: Array.from(
        { length: workers },
        (_, i) =>
          med(
            spread.map((x) => x[i] ?? 0),
            1,
          ) ?? 0,
      ),
      other_cores: med(all.map((s) => s.other_cores).filter((x): x is number => x !== null)),
    };
  });
}

export function throughputTable(rows: ThroughputSummary[]): string {
  const base = rows.find((r) => r.mode === 'embedded')?.wall_s ?? null;
  const dash = (mode: string, v: string) => (mode === 'embedded' ? '–' : v);
  return [
    '| setup | runs ok | jobs verified | wall s (median) | wall min–max | wall × embedded | MB | MB/s | CPU s total | Gabe (API + workers) | redis | S3 server | peak RSS per worker MB (max) | API peak RSS MB | jobs per worker (median) | other load (cores) |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
    ...rows.map((r) => {
      const setup =
        r.mode === 'embedded'
          ? `embedded \`gabe serve\`, ${r.concurrency_per_worker} slots`
          : `${r.workers} worker${r.workers > 1 ? 's' : ''} × ${r.concurrency_per_worker} slots`;
      const x = base && r.wall_s ? `${(r.wall_s / base).toFixed(2)}×` : '–';
      return `| ${setup} | ${r.ok_runs}/${r.runs} | ${r.jobs_verified} | ${fmt(r.wall_s)} | ${fmt(r.wall_min_s)}–${fmt(r.wall_max_s)} | ${x} | ${fmt(r.mb, 0)} | ${fmt(r.mb_per_s, 1)} | ${fmt(r.cpu_s.total)} | ${fmt(r.cpu_s.gabe)} | ${dash(r.mode, fmt(r.cpu_s.redis))} | ${dash(r.mode, fmt(r.cpu_s.s3))} | ${fmt(r.peak_rss_worker_max_mb, 0)} | ${fmt(r.peak_rss_api_max_mb, 0)} | ${dash(r.mode, r.jobs_per_worker.join(' / '))} | ${fmt(r.other_cores)} |`;
    }),
  ].join('\n');
}

export function summariseOverhead(samples: SingleSample[]): OverheadSummary[] {
  return (['embedded', 'cluster'] as const).map((mode) => {
    const all = samples.filter((s) => s.mode === mode);
    const ok = all.filter((s) => s.verified);
    const walls = ok.map((s) => s.wall_s);
    return {
      mode,
      runs: all.length,
      ok_runs: ok.length,
      wall_s: med(walls, 3),
      wall_min_s: walls.length ? Math.min(...walls) : null,
      wall_max_s: walls.length ? Math.max(...walls) : null,
      cpu_s: med(ok.map((s) => s.cpu_s)),
      cpu_by_process_s: Object.fromEntries(
        Object.keys(ok[0]?.cpu_by_process_s ?? {}).map((k) => [
          k,
          med(ok.map((s) => s.cpu_by_process_s[k] ?? 0)),
        ]),
      ),
      queued_s: med(nonNull(ok.map((s) => s.queued_s)), 3),
      upload_s: med(nonNull(ok.map((s) => s.upload_s)), 3),
      upload_complete_s: med(nonNull(ok.map((s) => s.upload_complete_s ?? null)), 3),
      early_parts: med(nonNull(ok.map((s) => s.early_parts ?? null)), 1),
      other_cores: med(nonNull(all.map((s) => s.other_cores))),
    };
  });
}

const LABEL: Record<SingleSample['mode'], string> = {
  embedded: 'embedded `gabe serve` (SQLite, local file)',
  cluster: 'cluster: API + 1 worker + Redis + S3 (upload included)',
};

export function overheadTable(rows: OverheadSummary[]): string {
  return [
    '| path | runs ok | wall s (median) | wall min–max | POST → started s | upload s (after the download) | of it S3 complete s | parts sent early | CPU s (median) | CPU by process s | other load (cores) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
    ...rows.map(
      (r) =>
        `| ${LABEL[r.mode]} | ${r.ok_runs}/${r.runs} | ${fmt(r.wall_s, 3)} | ${fmt(r.wall_min_s, 3)}–${fmt(r.wall_max_s, 3)} | ${fmt(r.queued_s, 3)} | ${fmt(r.upload_s, 3)} | ${fmt(r.upload_complete_s, 3)} | ${fmt(r.early_parts, 0)} | ${fmt(r.cpu_s)} | ${Object.entries(
          r.cpu_by_process_s,
        )
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(', ')} | ${fmt(r.other_cores)} |`,
    ),
  ].join('\n');
}

export const OVERHEAD_GOAL = 1.1;

export function overheadTarget(rows: OverheadSummary[]): Target & { ratio: number | null } {
  const e = rows.find((r) => r.mode === 'embedded')?.wall_s ?? null;
  const c = rows.find((r) => r.mode === 'cluster')?.wall_s ?? null;
  const ratio = e && c ? round(c / e, 2) : null;
  return {
    target: 'one HLS job, wall: cluster (Redis + S3) / embedded',
    measured: ratio === null ? 'n/a' : `${ratio.toFixed(2)}× (${fmt(c, 3)} s / ${fmt(e, 3)} s)`,
    goal: `≤ ${OVERHEAD_GOAL.toFixed(2)}×`,
    status: ratio === null ? 'n/a' : ratio <= OVERHEAD_GOAL ? 'pass' : 'FAIL',
    ratio,
  };
}

/** The same ratio with the upload taken out: what Redis and the extra processes cost on their own. */
export function withoutUpload(rows: OverheadSummary[]): string {
  const e = rows.find((r) => r.mode === 'embedded')?.wall_s ?? null;
  const c = rows.find((r) => r.mode === 'cluster');
  if (!e || !c?.wall_s || c.upload_s === null) return 'n/a';
  return `${((c.wall_s - c.upload_s) / e).toFixed(2)}× (${(c.wall_s - c.upload_s).toFixed(3)} s / ${e.toFixed(3)} s)`;
}

export interface MachineInfo {
  cpus: number;
  cpu_model: string;
  total_mem_gb: number;
  platform: string;
  node: string;
  loadavg_start: number[];
}

/** The whole report as markdown: what bench/results/cluster-latest.md holds and bench/README.md quotes. */
export function clusterMarkdown(r: {
  machine: MachineInfo;
  latencyMs: number;
  rateMbit: number;
  hls: HlsContent;
  rounds: number;
  jobs: number;
  slots: number;
  tp: ThroughputSummary[];
  oh: OverheadSummary[];
  target: Target;
}): string {
  const m = r.machine;
  // `--only` runs one phase: the other's table is left out rather than printed empty.
  const throughput =
    r.tp.length === 0
      ? []
      : [
          `### Throughput: ${r.jobs} HLS jobs at once, ${r.slots} job slots in all`,
          '',
          throughputTable(r.tp),
          '',
          `All processes share the machine's ${m.cpus} cores: more workers add processes, not cores.`,
          '',
        ];
  const overhead = r.oh.every((o) => o.runs === 0)
    ? []
    : [
        '### Overhead of the Redis + S3 path, one HLS job',
        '',
        overheadTable(r.oh),
        '',
        targetTable([r.target]),
        '',
        `Without the upload's time after the download (the worker's own timing of it taken off the cluster's median wall): ${withoutUpload(r.oh)}.`,
        '',
      ];
  return [
    `Machine: ${m.cpus} cores (${m.cpu_model}), ${m.total_mem_gb} GB RAM, ${m.platform}, Node ${m.node}; load average at start ${m.loadavg_start.join(' / ')}.`,
    `Setup: origin on 127.0.0.1 (${r.latencyMs} ms per request, ${r.rateMbit} Mbit/s per connection); HLS ${r.hls.segments} × 1 s 1080p segments, ${(r.hls.bytes / 1e6).toFixed(0)} MB per job; redis-server and s3rver each in its own process; Gabe from dist/cli.js; ${r.rounds} round(s), medians of runs whose every output matched embedded mode's bytes.`,
    '',
    ...throughput,
    ...overhead,
    'wall = first POST to the last COMPLETED seen by polling (100 ms for batches, 50 ms for one job); MB = bytes the origin served in the window; CPU = utime + stime (+ waited-for children) from /proc over the window, of each process; peak RSS = each process tree that runs jobs, sampled every 50 ms; other load = busy cores of everything else on the machine during the run.',
  ].join('\n');
}
