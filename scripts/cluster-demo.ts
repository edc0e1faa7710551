/**
 * `npm run cluster:demo`: a whole Gabe cluster on this machine, in under a minute. Starts redis-server,
 * a local S3 server, one API node (`gabe serve --no-worker`) and two workers (`gabe worker`) through
 * the test harness (test/helpers/cluster.ts), makes a short HLS stream and an MP4 with ffmpeg, serves
 * them from 127.0.0.1 with some latency so jobs overlap, submits a mixed batch, shows progress, then
 * which worker ran each job and where its file went, and reads one file back through the API with a
 * Range. Everything is stopped on the way out, Ctrl-C included.
 *
 *   npm run cluster:demo                    12 jobs
 *   npm run cluster:demo -- --jobs 20
 *   npm run cluster:demo -- --kill-worker   SIGKILL worker-2 while it runs jobs: worker-1 takes them over
 */
import { parseArgs } from 'node:util';
import { onPath } from '../bench/tools.js';
import { type Cluster, type ClusterProcess, startCluster } from '../test/helpers/cluster.js';
import { makeHlsTs, makeMp4 } from '../test/helpers/fixtures.js';
import { type Origin, startOrigin } from '../test/helpers/origin.js';

interface JobJson {
  job_id: string;
  type: string;
  status: string;
  started_at: string | null;
  completed_at: string | null;
  error: string | null;
  result: { output_path: string; file_size_bytes: number } | null;
}

const { values: args } = parseArgs({
  options: { jobs: { type: 'string', default: '12' }, 'kill-worker': { type: 'boolean', default: false } },
});
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(1).padStart(5);
const say = (s: string) => process.stdout.write(`[${secs()} s] ${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const FINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

let origin: Origin | null = null;
let cluster: Cluster | null = null;
let stopping: Promise<void> | null = null;

/** Stops everything once, whoever asks first (the end of the demo, an error, Ctrl-C). */
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    await cluster?.close().catch(() => {});
    await origin?.close().catch(() => {});
  })();
  return stopping;
}

process.once('SIGINT', () => {
  process.stdout.write('\nCtrl-C: stopping the workers, the API node, S3 and Redis…\n');
  void stopAll().then(() => process.exit(130));
});

async function submit(api: ClusterProcess, type: 'hls' | 'mp4', url: string, name: string): Promise<string> {
  const res = await fetch(`${api.url}${type === 'hls' ? '/download/' : '/download/mp4'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url, video_name: name }),
  });
  const body = (await res.json()) as JobJson;
  if (res.status !== 200) throw new Error(`POST answered ${res.status}: ${JSON.stringify(body)}`);
  return body.job_id;
}

const getJob = async (api: ClusterProcess, id: string) =>
  (await (await fetch(`${api.url}/job/${id}`)).json()) as JobJson;

/** "worker-1", or "worker-2 → worker-1 (took over)" when a job ran on more than one. */
function ranOn(names: string[] | undefined): string {
  if (!names?.length) return '–';
  const distinct = names.filter((n, i) => names.indexOf(n) === i);
  return distinct.length === 1 ? distinct[0]! : `${distinct.join(' → ')} (took over)`;
}

function size(bytes: number | undefined): string {
  if (bytes === undefined) return '–';
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(0)} KB`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function main(): Promise<void> {
  if (!onPath('redis-server')) {
    process.stderr.write(
      'cluster:demo needs redis-server on PATH (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis).\n',
    );
    process.exit(1);
  }
  if (!onPath('ffmpeg')) {
    process.stderr.write(
      'cluster:demo needs ffmpeg on PATH to make its videos (sudo apt-get install ffmpeg).\n',
    );
    process.exit(1);
  }
  const count = Number(args.jobs);
  say('making an 8 s HLS stream (1 s segments) and a 6 s MP4 with ffmpeg…');
  const [hls, mp4] = await Promise.all([
    makeHlsTs({ seconds: 8, segmentSeconds: 1 }),
    makeMp4({ seconds: 6 }),
  ]);
  origin = await startOrigin();
  origin.serveDir('/hls/', hls.dir);
  origin.addFile('/video.mp4', mp4.file);
  // A slow origin (time to first byte, a paced body), so each job takes a few seconds and both workers
  // run two at once while the rest wait in the queue.
  origin.addFault({ match: /\.ts$/, latencyMs: 200, throttleBytesPerSec: 50_000 });
  origin.addFault({ match: /\.mp4$/, latencyMs: 200, throttleBytesPerSec: 100_000 });
  say(`origin: ${origin.url}/hls/index.m3u8 and ${origin.url}/video.mp4`);

  say('starting redis-server, an S3 server, one API node and two workers (2 jobs at once each)…');
  cluster = await startCluster({ config: { max_concurrent_downloads: 2 } });
  const [api, , w2] = await Promise.all([
    cluster.startApi('api'),
    cluster.startWorker('worker-1', 2),
    cluster.startWorker('worker-2', 2),
  ]);
  say(`Redis ${cluster.redis.url} · S3 ${cluster.s3!.endpoint} bucket ${cluster.s3!.bucket}`);
  say(`API node ${api!.url} (gabe serve --no-worker) · worker-1, worker-2 (gabe worker --concurrency 2)`);

  const jobs: { id: string; type: 'hls' | 'mp4' }[] = [];
  for (let i = 0; i < count; i++) {
    const type = i % 3 === 2 ? 'mp4' : 'hls';
    const url = type === 'hls' ? `${origin.url}/hls/index.m3u8` : `${origin.url}/video.mp4`;
    jobs.push({ id: await submit(api!, type, url, `demo-${String(i + 1).padStart(2, '0')}`), type });
  }
  say(
    `submitted ${count} jobs (${jobs.filter((j) => j.type === 'hls').length} HLS, ${jobs.filter((j) => j.type === 'mp4').length} MP4) to the API node`,
  );

  let killed = !args['kill-worker'];
  let states: JobJson[] = [];
  const deadline = performance.now() + 90_000;
  for (;;) {
    states = await Promise.all(jobs.map((j) => getJob(api!, j.id)));
    const ran = cluster.whereJobsRan();
    const by = (s: string) => states.filter((j) => j.status === s).length;
    const running = (w: string) =>
      states.filter((j) => j.status === 'PROCESSING' && ran.get(j.job_id)?.at(-1) === w).length;
    say(
      `queued ${by('PENDING')} · running ${by('PROCESSING')} (worker-1 ${running('worker-1')}, worker-2 ${running('worker-2')}) · completed ${by('COMPLETED')}/${count}${by('FAILED') ? ` · failed ${by('FAILED')}` : ''}`,
    );
    if (!killed && running('worker-2') > 0) {
      killed = true;
      await w2!.kill9();
      say('killed worker-2 with SIGKILL: its jobs go back to the queue once their locks expire (3 s here)');
    }
    if (states.every((j) => FINAL.has(j.status)) || performance.now() > deadline) break;
    await sleep(1000);
  }

  const ran = cluster.whereJobsRan();
  const rows = [['job', 'type', 'status', 'ran on', 'size', 'seconds', 'output']];
  for (const j of states) {
    const took =
      j.started_at && j.completed_at
        ? ((Date.parse(j.completed_at) - Date.parse(j.started_at)) / 1000).toFixed(1)
        : '–';
    rows.push([
      j.job_id.slice(0, 8),
      j.type,
      j.status,
      ranOn(ran.get(j.job_id)),
      size(j.result?.file_size_bytes),
      took,
      j.result?.output_path ?? j.error ?? '',
    ]);
  }
  process.stdout.write(`\n${table(rows)}\n\n`);

  const done = states.find((j) => j.status === 'COMPLETED');
  if (done) {
    const res = await fetch(`${api!.url}/job/${done.job_id}/file`, { headers: { range: 'bytes=0-31' } });
    const bytes = Buffer.from(await res.arrayBuffer());
    say(
      `GET /job/${done.job_id.slice(0, 8)}…/file with Range: bytes=0-31 → ${res.status}, content-range ${res.headers.get('content-range')}`,
    );
    say(
      `  ${bytes.toString('hex').replace(/(.{8})/g, '$1 ')} (an MP4's "${bytes.subarray(4, 8).toString('latin1')}" box), streamed from S3 by the API node`,
    );
  }
  const ok = states.filter((j) => j.status === 'COMPLETED').length;
  say(`${ok}/${count} jobs completed; stopping everything…`);
  await stopAll();
  say('done');
  process.exit(ok === count ? 0 : 1);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`cluster:demo: ${(err as Error)?.stack ?? String(err)}\n`);
  await stopAll();
  process.exit(1);
});
