/**
 * `npm run bench`: Gabe against ffmpeg, yt-dlp, curl and aria2c on the same content from the same
 * throttled local origin. See bench/README.md for what each number means.
 *
 *   npm run bench                   600 × 1 s HLS + 240 MB MP4, 3 rounds, concurrency sweep
 *   npm run bench -- --quick        60 segments / 24 MB, 1 round, no sweep
 *   npm run bench -- --long         also Gabe on a 10× longer stream, to compare its memory
 *   options: --rounds N  --segments N  --tools a,b  --sweep / --no-sweep  --sweep-rounds N
 *            --latency-ms 30  --rate-mbit 50  --no-build  --timeout-s S
 *   npm run bench -- --cluster      the cluster bench instead (bench/cluster.ts, its own options)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type DashContent,
  ensureDash,
  ensureHls,
  ensureMp4,
  type HlsContent,
  type Mp4Content,
  mdatSha256,
  sha256File,
} from './content.js';
import {
  type Background,
  backgroundMeter,
  cpuSeconds,
  hasGnuTime,
  loadAverage,
  type Measurement,
  machineFacts,
  measure,
  median,
  round,
  TreeSampler,
} from './measure.js';
import { type OriginProcess, startOriginProcess } from './origin-process.js';
import {
  chartPanels,
  mainTable,
  renderSvg,
  type Sample,
  type Summary,
  summarise,
  sweepTable,
  type Target,
  targetTable,
} from './report.js';
import { type ApiJob, build, cleanEnv, knownConfig, postJson, startGabeServe } from './serve.js';
import { type ContentKind, GABE_CLI, onPath, REFERENCE, TOOLS, type Tool, toolVersions } from './tools.js';

// The cluster bench is another benchmark with its own options: hand over before parsing ours.
if (process.argv.includes('--cluster')) {
  const { runClusterBench } = await import('./cluster.js');
  process.exit(await runClusterBench(process.argv.slice(2)));
}

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    long: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    segments: { type: 'string' },
    tools: { type: 'string' },
    sweep: { type: 'boolean' },
    'no-sweep': { type: 'boolean', default: false },
    'sweep-rounds': { type: 'string' },
    'sweep-values': { type: 'string', default: '1,4,8,16,32,64' },
    'latency-ms': { type: 'string', default: '30' },
    'rate-mbit': { type: 'string', default: '50' },
    'no-build': { type: 'boolean', default: false },
    'timeout-s': { type: 'string' },
  },
});

const BENCH = path.resolve('bench');
const CACHE = path.join(BENCH, '.cache');
const RESULTS = path.join(BENCH, 'results');
const TMP = path.join(RESULTS, 'tmp');
const started = performance.now();
const log = (s: string) =>
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
const nums = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const quick = args.quick;
const segments = Number(args.segments ?? (quick ? 60 : 600));
const rounds = Number(args.rounds ?? (quick ? 1 : 3));
const doSweep = args.sweep ?? (!quick && !args['no-sweep']);
const sweepRounds = Number(args['sweep-rounds'] ?? 1);
const sweepValues = args['sweep-values'].split(',').map(Number);
const latencyMs = Number(args['latency-ms']);
const rateMbit = Number(args['rate-mbit']);

// ----------------------------------------------------------------------------------------- verify

function probeDuration(file: string): number | null {
  try {
    const out = execFileSync(
      'ffprobe',
      ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file],
      {
        encoding: 'utf8',
      },
    );
    const d = Number(out.trim());
    return Number.isFinite(d) ? d : null;
  } catch {
    return null;
  }
}

/** The tool's output: the expected name, else the only .mp4 it left in its folder. */
function findOutput(expected: string): string | null {
  if (existsSync(expected)) return expected;
  const dir = path.dirname(expected);
  const mp4s = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.mp4')) : [];
  return mp4s.length === 1 ? path.join(dir, mp4s[0]!) : null;
}

async function verify(
  file: string | null,
  expectedDuration: number,
  sha256: string | null,
  mediaOf: string | null = null,
): Promise<{ verified: boolean; note: string }> {
  if (!file || !existsSync(file)) return { verified: false, note: 'no output file' };
  const d = probeDuration(file);
  if (d === null) return { verified: false, note: 'ffprobe cannot read the output' };
  if (Math.abs(d - expectedDuration) > 1) {
    return { verified: false, note: `duration ${d.toFixed(2)} s, expected ${expectedDuration.toFixed(2)} s` };
  }
  if (sha256) {
    const got = await sha256File(file);
    if (got !== sha256) return { verified: false, note: 'output differs from the source bytes' };
    return { verified: true, note: `${d.toFixed(2)} s, byte-identical` };
  }
  if (mediaOf) {
    const [got, want] = await Promise.all([mdatSha256(file), mdatSha256(mediaOf)]);
    if (!got || got !== want)
      return { verified: false, note: "output's media bytes differ from the source's" };
    return { verified: true, note: `${d.toFixed(2)} s, media byte-identical` };
  }
  return { verified: true, note: `${d.toFixed(2)} s` };
}

// -------------------------------------------------------------------------------------------- runs

interface Target0 {
  kind: ContentKind;
  url: string;
  segments: number;
  bytes: number;
  durationS: number;
  sha256: string | null;
}

function timeoutFor(t: Target0): number {
  if (args['timeout-s']) return Number(args['timeout-s']) * 1000;
  // The slowest honest run is one connection: bytes at the per-connection rate plus latency per request.
  const oneConnection = t.bytes / ((rateMbit * 1e6) / 8) + (t.segments * latencyMs) / 1000;
  return Math.max(60_000, oneConnection * 4 * 1000);
}

const gabeConfigFile = path.join(TMP, 'gabe-cli-config.json');

/** The API path: submit → COMPLETED against a fresh `gabe serve`, measuring the server's tree. */
async function measureApi(
  t: Target0,
  dir: string,
  harnessPids: number[],
): Promise<Measurement & { idleRss: number; output: string | null; background: Background }> {
  const server = await startGabeServe(dir);
  try {
    await sleep(300);
    const idle = new TreeSampler(server.pid, true);
    idle.sample();
    const cpu0 = cpuSeconds(server.pid) ?? 0;
    const sampler = new TreeSampler(server.pid, true).start(50);
    const meter = backgroundMeter(harnessPids);
    const t0 = performance.now();
    const { status, json } = await postJson(
      `${server.url}${t.kind === 'mp4' ? '/download/mp4' : '/download/'}`,
      {
        url: t.url,
        video_name: 'out',
      },
    );
    let job = json as ApiJob | null;
    let error = status === 200 ? '' : `submit answered ${status}: ${JSON.stringify(json)}`;
    const deadline = t0 + timeoutFor(t);
    while (!error && job && !['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status)) {
      if (performance.now() > deadline) {
        error = 'timed out';
        break;
      }
      await sleep(50);
      const res = await fetch(`${server.url}/job/${job.job_id}`);
      job = (await res.json()) as ApiJob;
    }
    const wall = (performance.now() - t0) / 1000;
    sampler.stop();
    const cpu1 = cpuSeconds(server.pid) ?? cpu0;
    const background = meter.stop(cpu1 - cpu0);
    if (!error && job?.status !== 'COMPLETED') error = `job ${job?.status}: ${job?.error_code} ${job?.error}`;
    return {
      ok: !error,
      exit_code: error ? 1 : 0,
      signal: null,
      timed_out: error === 'timed out',
      wall_s: round(wall, 3),
      cpu_user_s: null,
      cpu_sys_s: null,
      cpu_s: round(cpu1 - cpu0, 2),
      peak_rss_tree_mb: round(sampler.peakBytes / (1024 * 1024), 1),
      peak_anon_tree_mb: round(sampler.peakAnonBytes / (1024 * 1024), 1),
      max_rss_proc_mb: null,
      processes_at_peak: sampler.peakProcesses,
      peak_breakdown: sampler.peakBreakdown,
      stderr_tail: error,
      idleRss: round(idle.peakBytes / (1024 * 1024), 1),
      output: job?.result?.output_path ?? null,
      background,
    };
  } finally {
    await server.stop();
  }
}

async function runOne(
  tool: Tool,
  t: Target0,
  origin: OriginProcess,
  phase: Sample['phase'],
  roundNo: number,
  concurrency: number | null = null,
): Promise<Sample> {
  const dir = path.join(TMP, `${tool.id}${concurrency ? `-n${concurrency}` : ''}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const output = path.join(dir, 'out.mp4');
  await origin.stats(true);
  let m: Measurement;
  let idleRss: number | null = null;
  let produced: string | null;
  let background: Background;
  if (tool.mode === 'api') {
    const r = await measureApi(t, dir, [origin.child.pid!]);
    m = r;
    idleRss = r.idleRss;
    produced = r.output;
    background = r.background;
  } else {
    const meter = backgroundMeter([origin.child.pid!]);
    const inv = tool.invoke!({
      url: t.url,
      output,
      dir,
      gabeConfig: gabeConfigFile,
      ...(concurrency ? { concurrency } : {}),
    });
    m = await measure(inv.cmd, inv.args, {
      cwd: dir,
      env: { ...cleanEnv(), ...inv.env },
      timeoutMs: timeoutFor(t),
    });
    produced = findOutput(output);
    background = meter.stop(m.cpu_s);
  }
  const originStats = await origin.stats(true);
  const v = m.ok
    ? await verify(
        produced,
        t.durationS,
        tool.identical ? t.sha256 : null,
        tool.sameMedia ? path.join(CACHE, new URL(t.url).pathname.slice(1)) : null,
      )
    : { verified: false, note: 'run failed' };
  rmSync(dir, { recursive: true, force: true });
  const sample: Sample = {
    ...m,
    tool: tool.id,
    label: tool.label,
    kind: t.kind,
    phase,
    round: roundNo,
    concurrency,
    segments: t.segments,
    bytes: t.bytes,
    verified: v.verified,
    verify_note: v.note,
    origin: originStats,
    server_idle_rss_mb: idleRss,
    ...background,
  };
  const status =
    m.ok && v.verified
      ? 'ok'
      : `FAILED (${m.ok ? v.note : m.timed_out ? 'timed out' : m.stderr_tail.split('\n').at(-1)})`;
  log(
    `${phase} r${roundNo} ${tool.id}${concurrency ? ` -n ${concurrency}` : ''}: ${m.wall_s.toFixed(2)} s wall, ${m.cpu_s ?? '?'} s CPU, ${m.peak_rss_tree_mb} MB peak RSS (anon ${m.peak_anon_tree_mb}) [${m.peak_breakdown.map((p) => `${p.comm} ${Math.round(p.mb)}`).join(' + ')}], ${originStats?.requests ?? '?'} requests / ${originStats?.connections ?? '?'} connections / ${originStats ? (originStats.request_ms / 1000 / m.wall_s).toFixed(1) : '?'} in flight, other load ${background.other_cores ?? '?'} cores — ${status}`,
  );
  return sample;
}

// -------------------------------------------------------------------------------------------- main

function machine() {
  return { ...machineFacts(), loadavg_start: loadAverage() };
}

function targetsFrom(summaries: Summary[], longRss: { short: number | null; long: number | null }): Target[] {
  const get = (id: string) => summaries.find((s) => s.tool === id && s.concurrency === null);
  const out: Target[] = [];
  const ratioTarget = (
    id: string,
    what: string,
    field: 'wall_x_ref' | 'cpu_x_ref',
    goal: number,
    ref: string,
  ) => {
    const s = get(id);
    const v = s?.[field] ?? null;
    out.push({
      target: `${what} (${s?.label ?? id}) vs ${ref}`,
      measured: v === null ? 'n/a' : `${v.toFixed(2)}×`,
      goal: `≤ ${goal.toFixed(1)}×`,
      status: v === null ? 'n/a' : v <= goal ? 'pass' : 'FAIL',
    });
  };
  for (const id of ['gabe-cli', 'gabe-api']) {
    ratioTarget(id, 'HLS wall', 'wall_x_ref', 0.6, 'yt-dlp -N16');
    ratioTarget(id, 'HLS CPU', 'cpu_x_ref', 0.3, 'yt-dlp -N16');
  }
  // The issue's bar for DASH: at least as fast relative to the peers as the HLS case is.
  for (const [id, hlsId] of [
    ['gabe-cli-dash', 'gabe-cli'],
    ['gabe-api-dash', 'gabe-api'],
  ] as const) {
    for (const field of ['wall_x_ref', 'cpu_x_ref'] as const) {
      const s = get(id);
      const v = s?.[field] ?? null;
      const goal = get(hlsId)?.[field] ?? null;
      const what = field === 'wall_x_ref' ? 'wall' : 'CPU';
      out.push({
        target: `DASH ${what} (${s?.label ?? id}) vs yt-dlp -N16, against the HLS case's ratio`,
        measured: v === null ? 'n/a' : `${v.toFixed(2)}×`,
        goal: goal === null ? 'n/a' : `≤ ${goal.toFixed(2)}× (HLS)`,
        // Within 0.02 of the HLS ratio counts as equal: the peers' own runs vary more than that.
        status: v === null || goal === null ? 'n/a' : v <= goal + 0.02 ? 'pass' : 'FAIL',
      });
    }
  }
  for (const id of ['gabe-cli-mp4', 'gabe-api-mp4'])
    ratioTarget(id, 'MP4 wall', 'wall_x_ref', 1.0, 'aria2c -x16');
  // gabe-cli-undici measures a transport Gabe does not ship (docs/architecture.md, "HTTP stack"): not a target.
  const gabe = summaries.filter((s) => s.tool.startsWith('gabe') && s.tool !== 'gabe-cli-undici');
  const worst = gabe.reduce<Summary | null>(
    (w, s) =>
      s.peak_rss_max_mb !== null && (w === null || s.peak_rss_max_mb > (w.peak_rss_max_mb ?? 0)) ? s : w,
    null,
  );
  out.push({
    target: `peak RSS of Gabe's process tree, worst run (${worst ? `${worst.label} ${worst.kind}${worst.concurrency ? ` -n ${worst.concurrency}` : ''}` : '–'})`,
    measured: worst?.peak_rss_max_mb != null ? `${worst.peak_rss_max_mb.toFixed(0)} MB` : 'n/a',
    goal: '≤ 150 MB',
    status: worst?.peak_rss_max_mb == null ? 'n/a' : worst.peak_rss_max_mb <= 150 ? 'pass' : 'FAIL',
  });
  // The issue's wording: a 6,000-segment run within +20 MB of the 600-segment run.
  const growth = longRss.short && longRss.long ? longRss.long - longRss.short : null;
  out.push({
    target: 'RSS flat in stream length (gabe download, 10× the segments − 1×)',
    measured:
      growth === null
        ? 'n/a (run with --long)'
        : `${growth >= 0 ? '+' : ''}${growth.toFixed(0)} MB (${longRss.short} → ${longRss.long} MB)`,
    goal: '≤ +20 MB',
    status: growth === null ? 'n/a' : growth <= 20 ? 'pass' : 'FAIL',
  });
  return out;
}

async function main(): Promise<void> {
  mkdirSync(TMP, { recursive: true });
  if (!args['no-build']) build(log);
  if (!existsSync(GABE_CLI)) throw new Error(`${GABE_CLI} is missing; run npm run build`);
  if (!onPath('ffmpeg') || !onPath('ffprobe'))
    throw new Error('ffmpeg and ffprobe are needed to make and check the content');
  const notes: string[] = [];
  if (!hasGnuTime())
    notes.push(
      'GNU time (/usr/bin/time) is missing: CPU seconds are not measured for command-line tools (apt-get install time)',
    );
  const selected = args.tools ? new Set(args.tools.split(',')) : null;
  const tools = TOOLS.filter((t) => {
    if (selected && !selected.has(t.id)) return false;
    if (t.binary && !onPath(t.binary)) {
      notes.push(`${t.label}: \`${t.binary}\` not on PATH, skipped`);
      return false;
    }
    return true;
  });
  for (const n of notes) log(`note: ${n}`);
  writeFileSync(gabeConfigFile, JSON.stringify(knownConfig({ allow_private_networks: true }).config));

  const genStart = performance.now();
  const hls: HlsContent = await ensureHls(CACHE, segments, log);
  const mp4: Mp4Content = await ensureMp4(CACHE, hls, log);
  const dash: DashContent = await ensureDash(CACHE, mp4, segments, log);
  const long: HlsContent | null = args.long ? await ensureHls(CACHE, segments * 10, log) : null;
  const generationS = round((performance.now() - genStart) / 1000, 1);
  log(
    `content ready in ${generationS} s: HLS ${hls.segments} segments ${(hls.bytes / 1e6).toFixed(1)} MB, MP4 ${(mp4.bytes / 1e6).toFixed(1)} MB, DASH ${dash.requests} segments ${(dash.bytes / 1e6).toFixed(1)} MB`,
  );

  // What every `gabe download` pays before its first request: loading Node and Gabe's modules.
  const startup: Measurement[] = [];
  for (let i = 0; i < 3; i++) {
    startup.push(
      await measure(process.execPath, [GABE_CLI, '--version'], { env: cleanEnv(), timeoutMs: 30_000 }),
    );
  }
  const startupLine = `\`gabe --version\` (start-up alone): ${median(startup.map((m) => m.wall_s))?.toFixed(2)} s wall, ${median(nums(startup.map((m) => m.cpu_s)))?.toFixed(2)} s CPU, ${median(startup.map((m) => m.peak_rss_tree_mb))?.toFixed(0)} MB RSS`;
  log(startupLine);

  const origin = await startOriginProcess({ root: CACHE, latencyMs, rateMbit });
  const samples: Sample[] = [];
  const info = machine();
  const runStart = performance.now();
  try {
    const hlsTarget: Target0 = {
      kind: 'hls',
      url: origin.url + hls.urlPath,
      segments: hls.segments,
      bytes: hls.bytes,
      durationS: hls.durationS,
      sha256: null,
    };
    const mp4Target: Target0 = {
      kind: 'mp4',
      url: origin.url + mp4.urlPath,
      segments: 1,
      bytes: mp4.bytes,
      durationS: mp4.durationS,
      sha256: mp4.sha256,
    };
    const dashTarget: Target0 = {
      kind: 'dash',
      url: origin.url + dash.urlPath,
      segments: dash.requests,
      bytes: dash.bytes,
      durationS: dash.durationS,
      sha256: null,
    };
    const targetOf = (t: Tool) => ({ hls: hlsTarget, mp4: mp4Target, dash: dashTarget })[t.kind];
    for (let r = 1; r <= rounds; r++) {
      // Round-robin, starting one tool later each round, so no tool always runs first or after a given one.
      const order = tools.map((_, i) => tools[(i + r - 1) % tools.length]!);
      for (const tool of order) samples.push(await runOne(tool, targetOf(tool), origin, 'main', r));
    }
    const cli = TOOLS.find((t) => t.id === 'gabe-cli')!;
    if (doSweep) {
      for (let r = 1; r <= sweepRounds; r++) {
        for (const n of sweepValues) samples.push(await runOne(cli, hlsTarget, origin, 'sweep', r, n));
      }
    }
    if (long) {
      const longTarget: Target0 = {
        ...hlsTarget,
        url: origin.url + long.urlPath,
        segments: long.segments,
        bytes: long.bytes,
        durationS: long.durationS,
      };
      for (const tool of TOOLS.filter((t) => t.id === 'gabe-cli' || t.id === 'gabe-api')) {
        samples.push({ ...(await runOne(tool, longTarget, origin, 'long', 1)) });
      }
    }
  } finally {
    origin.stop();
  }
  const runS = round((performance.now() - runStart) / 1000, 1);

  // ------------------------------------------------------------------------------------ report
  const main = samples.filter((s) => s.phase === 'main');
  const summaries = summarise(main, REFERENCE);
  const sweepSummaries = summarise(
    samples.filter((s) => s.phase === 'sweep'),
    REFERENCE,
  );
  const longSummaries = summarise(
    samples.filter((s) => s.phase === 'long'),
    REFERENCE,
  );
  const longRss = {
    short: summaries.find((s) => s.tool === 'gabe-cli')?.peak_rss_max_mb ?? null,
    long: longSummaries.find((s) => s.tool === 'gabe-cli')?.peak_rss_max_mb ?? null,
  };
  const targets = targetsFrom([...summaries, ...sweepSummaries], longRss);
  const label = (t: string) => TOOLS.find((x) => x.id === t)?.label ?? t;
  const machineLine = `${info.cpus} cores (${info.cpu_model}), ${info.total_mem_gb} GB RAM, ${info.platform}, Node ${info.node}`;
  const originLine = `origin on 127.0.0.1: ${latencyMs} ms per request, ${rateMbit} Mbit/s per connection`;
  const hlsNote = `HLS: ${hls.segments} × 1 s 1080p segments, ${(hls.bytes / 1e6).toFixed(0)} MB`;
  const mp4Note = `MP4: faststart, ${(mp4.bytes / 1e6).toFixed(0)} MB`;
  const dashNote = `DASH: ${dash.segments} × 1 s 1080p video + audio segments (SegmentTimeline), ${(dash.bytes / 1e6).toFixed(0)} MB`;
  const roundsLine = `${rounds} round(s), tools alternated round-robin; medians of successful runs`;

  const otherCores = median(samples.filter((s) => s.other_cores !== null).map((s) => s.other_cores!));
  const md: string[] = [];
  md.push(
    `Machine: ${machineLine}; load average at start ${info.loadavg_start.join(' / ')}; other processes kept a median ${otherCores === null ? '?' : otherCores.toFixed(2)} of ${info.cpus} cores busy during the runs (0 = quiet machine).`,
  );
  md.push(`Setup: ${originLine}; ${hlsNote}; ${dashNote}; ${mp4Note}; ${roundsLine}.`);
  md.push(
    '',
    `### ${hlsNote} (reference: ${label(REFERENCE.hls)})`,
    '',
    mainTable(summaries, 'hls', 'yt-dlp -N16'),
  );
  md.push(
    '',
    `### ${dashNote} (reference: ${label(REFERENCE.dash)})`,
    '',
    mainTable(summaries, 'dash', 'yt-dlp -N16'),
  );
  md.push(
    '',
    `### ${mp4Note} (reference: ${label(REFERENCE.mp4)})`,
    '',
    mainTable(summaries, 'mp4', 'aria2c -x16'),
  );
  if (sweepSummaries.length)
    md.push('', '### Segment concurrency sweep (HLS, gabe download)', '', sweepTable(sweepSummaries));
  if (longSummaries.length) {
    md.push('', `### Long stream (${segments * 10} segments) — Gabe's memory vs stream length`, '');
    md.push(
      '| tool | segments | wall s | CPU s | peak RSS MB | same tool at ' + `${segments} segments, RSS MB |`,
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const s of longSummaries) {
      const short = summaries.find((x) => x.tool === s.tool);
      md.push(
        `| ${s.label} | ${segments * 10} | ${s.wall_s ?? '–'} | ${s.cpu_s ?? '–'} | ${s.peak_rss_max_mb ?? '–'} | ${short?.peak_rss_max_mb ?? '–'} |`,
      );
    }
  }
  const idle = median(nums(main.map((s) => s.server_idle_rss_mb)));
  md.push(
    '',
    `Gabe baselines: ${startupLine}; \`gabe serve\` idle before a job: ${idle === null ? '–' : idle.toFixed(0)} MB RSS.`,
  );
  md.push('', '### Targets', '', targetTable(targets));
  const failures = [...summaries, ...sweepSummaries, ...longSummaries].flatMap((s) =>
    s.failures.map((f) => `${s.tool}${s.concurrency ? ` -n ${s.concurrency}` : ''} ${f}`),
  );
  if (notes.length || failures.length) {
    md.push('', '### Notes', '', ...notes.map((n) => `- ${n}`), ...failures.map((f) => `- failed: ${f}`));
  }
  md.push(
    '',
    'wall = spawn to exit (API: POST to COMPLETED seen by 50 ms polling); CPU = user + system seconds of the process and the children it waited for (GNU time; API: the server process from /proc over the job); peak RSS = largest sum of resident memory over the process tree, sampled every 50 ms (anon = its anonymous part, without shared libraries); requests = HTTP requests the origin served for one run; in flight = requests open at the origin, mean over the wall time of the run / max.',
  );
  const markdown = md.join('\n');
  process.stdout.write(`\n${markdown}\n\n`);

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const result = {
    kind: 'gabe-bench',
    version: 1,
    created_at: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    options: {
      segments,
      rounds,
      latency_ms: latencyMs,
      rate_mbit: rateMbit,
      sweep: doSweep ? sweepValues : null,
      sweep_rounds: sweepRounds,
      long: !!long,
    },
    machine: { ...info, loadavg_end: loadAverage() },
    tools: toolVersions(),
    content: { hls, dash, mp4, long },
    durations_s: { generation: generationS, runs: runS },
    gabe_startup: startup,
    other_load_cores_median: otherCores === null ? null : round(otherCores, 2),
    notes,
    summary: summaries,
    sweep: sweepSummaries,
    long: longSummaries,
    targets,
    samples,
    markdown,
  };
  const svg = renderSvg(
    `Gabe vs peers — ${info.cpus} cores, ${quick ? 'quick run' : 'full run'}`,
    [
      machineLine,
      `${originLine}; ${roundsLine}`,
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    ],
    chartPanels(
      [...summaries, ...sweepSummaries],
      {
        hls: `${hlsNote} — median wall and CPU seconds`,
        mp4: `${mp4Note} — median wall and CPU seconds`,
        dash: `${dashNote} — median wall and CPU seconds`,
      },
      { hls: 'yt-dlp -N16', mp4: 'aria2c -x16', dash: 'yt-dlp -N16' },
    ),
  );
  const files = [`${stamp}.json`, `${stamp}.svg`, 'latest.json', 'latest.svg'];
  writeFileSync(path.join(RESULTS, files[0]!), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(path.join(RESULTS, files[1]!), svg);
  writeFileSync(path.join(RESULTS, files[2]!), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(path.join(RESULTS, files[3]!), svg);
  if (onPath('rsvg-convert')) {
    try {
      execFileSync('rsvg-convert', [
        '-o',
        path.join(RESULTS, 'latest.png'),
        path.join(RESULTS, 'latest.svg'),
      ]);
      execFileSync('rsvg-convert', [
        '-o',
        path.join(RESULTS, `${stamp}.png`),
        path.join(RESULTS, `${stamp}.svg`),
      ]);
      files.push(`${stamp}.png`, 'latest.png');
    } catch (err) {
      log(`rsvg-convert failed: ${String(err)}`);
    }
  }
  log(
    `content generation ${generationS} s, runs ${runS} s; wrote ${files.map((f) => `bench/results/${f}`).join(', ')}`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
