import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { type Cluster, type ClusterProcess, startCluster } from '../helpers/cluster.js';
import {
  decodedHash,
  type HlsMediaFixture,
  type Mp4Fixture,
  makeHlsTs,
  makeMp4,
} from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService } from '../helpers/service.js';

interface JobJson {
  job_id: string;
  status: string;
  progress: number;
  error_code: string | null;
  result: { output_path: string } | null;
}

async function post(api: ClusterProcess, route: string, body: object): Promise<Response> {
  return fetch(`${api.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function submit(api: ClusterProcess, type: 'hls' | 'mp4', url: string, name: string): Promise<string> {
  const res = await post(api, type === 'hls' ? '/download/' : '/download/mp4', { url, video_name: name });
  const body = (await res.json()) as JobJson;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.job_id;
}

async function getJob(api: ClusterProcess, id: string): Promise<JobJson> {
  return (await (await fetch(`${api.url}/job/${id}`)).json()) as JobJson;
}

async function waitFor(
  api: ClusterProcess,
  id: string,
  ok: (j: JobJson) => boolean,
  ms = 120_000,
): Promise<JobJson> {
  const deadline = Date.now() + ms;
  for (;;) {
    const job = await getJob(api, id);
    if (ok(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} did not get there: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Asks S3 itself (HeadObject through the SDK), not the API. */
async function objectExists(cluster: Cluster, s3Url: string): Promise<boolean> {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(s3Url);
  assert.ok(m, s3Url);
  const c = cluster.s3!.config;
  const client = new S3Client({
    endpoint: c.endpoint!,
    region: c.region,
    forcePathStyle: true,
    credentials: { accessKeyId: c.access_key_id!, secretAccessKey: c.secret_access_key! },
  });
  try {
    await client.send(new HeadObjectCommand({ Bucket: m[1], Key: m[2] }));
    return true;
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFound') return false;
    throw err;
  } finally {
    client.destroy();
  }
}

const isFinal = (j: JobJson) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(j.status);

describe('a cluster: one API node, two workers, Redis and S3', () => {
  let origin: Origin;
  let hls: HlsMediaFixture;
  let mp4: Mp4Fixture;
  let cluster: Cluster;
  let api: ClusterProcess;
  let workers: ClusterProcess[] = [];
  /** The bytes embedded mode (SQLite, local files) writes for each source. */
  const reference: Record<'hls' | 'mp4', string> = { hls: '', mp4: '' };

  before(async () => {
    [hls, mp4] = await Promise.all([makeHlsTs({ seconds: 8, segmentSeconds: 1 }), makeMp4({ seconds: 4 })]);
    origin = await startOrigin();
    origin.serveDir('/hls/', hls.dir);
    origin.addFile('/v.mp4', mp4.file);
    const embedded = await startTestService({ max_jobs_per_ip: 0 });
    for (const [type, url] of [
      ['hls', `${origin.url}/hls/index.m3u8`],
      ['mp4', `${origin.url}/v.mp4`],
    ] as const) {
      const res = await embedded.app.inject({
        method: 'POST',
        url: type === 'hls' ? '/download/' : '/download/mp4',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ url, video_name: `ref-${type}` }),
      });
      const done = await embedded.waitFor(res.json().job_id, ['COMPLETED']);
      // Media identity: each job writes its own name into the file (media-identity.ts).
      reference[type] = mediaIdentity(done.result!.output_path);
    }
    await closeAllServices();
    cluster = await startCluster({ config: { max_concurrent_downloads: 2 } });
    [api, ...workers] = await Promise.all([
      cluster.startApi('api-1'),
      cluster.startWorker('worker-1', 2),
      cluster.startWorker('worker-2', 2),
    ]);
  });
  after(async () => {
    await cluster?.close();
    await origin?.close();
  });

  it('runs 20 HLS and MP4 jobs on both workers, each file identical to embedded mode and served from S3 with Range', async () => {
    // Slow segments and files keep both workers busy at once.
    origin.addFault({ match: /\.(ts|mp4)$/, latencyMs: 40 });
    const ids: { id: string; type: 'hls' | 'mp4' }[] = [];
    for (let i = 0; i < 20; i++) {
      const type = i % 2 === 0 ? 'hls' : 'mp4';
      const url = type === 'hls' ? `${origin.url}/hls/index.m3u8` : `${origin.url}/v.mp4`;
      ids.push({ id: await submit(api, type, url, `job-${i}`), type });
    }
    for (const { id, type } of ids) {
      const job = await waitFor(api, id, isFinal);
      assert.equal(job.status, 'COMPLETED', JSON.stringify(job));
      assert.match(job.result!.output_path, new RegExp(`^s3://${cluster.s3!.bucket}/.+/job-\\d+\\.mp4$`));
      const file = await fetch(`${api.url}/job/${id}/file`);
      assert.equal(file.status, 200);
      const bytes = Buffer.from(await file.arrayBuffer());
      assert.equal(mediaIdentity(bytes), reference[type], `job ${id} (${type}) differs from embedded mode`);
      const part = await fetch(`${api.url}/job/${id}/file`, { headers: { range: 'bytes=100-1099' } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), `bytes 100-1099/${bytes.length}`);
      assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(100, 1100));
    }
    const ran = cluster.whereJobsRan();
    const byWorker = new Set(ids.flatMap(({ id }) => ran.get(id) ?? []));
    assert.deepEqual([...byWorker].sort(), ['worker-1', 'worker-2'], 'both workers ran jobs');
    origin.reset();
  });

  it("streams a worker's events to an SSE client of another API node, and sends the job's webhook once", async () => {
    const other = await cluster.startApi('api-sse');
    const deliveries: string[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        deliveries.push((JSON.parse(body) as JobJson).job_id);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    // One segment at a time, each slow: the job runs long enough to report progress.
    origin.addFault({ match: /\.ts$/, latencyMs: 300 });
    const res = await post(api, '/download/', {
      url: `${origin.url}/hls/index.m3u8`,
      video_name: 'sse',
      use_multithreading: false,
      callback_url: hook,
    });
    const { job_id: id } = (await res.json()) as JobJson;
    const events = await fetch(`${other.url}/job/${id}/events`);
    assert.equal(events.status, 200);
    let text = '';
    for await (const chunk of events.body!) text += Buffer.from(chunk).toString();
    const seen = [...text.matchAll(/^data: (.*)$/gm)].map(
      (m) => JSON.parse(m[1]!) as JobJson & { progress: number },
    );
    assert.ok(
      seen.some((e) => e.status === 'PROCESSING' && e.progress > 0 && e.progress < 100),
      `progress while it ran: ${text.slice(0, 500)}`,
    );
    assert.equal(seen.at(-1)?.status, 'COMPLETED');
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(deliveries, [id], 'one webhook, from the worker that finished it');
    receiver.close();
    await other.stop();
    origin.reset();
  });

  it('answers /health, /metrics and /jobs from the shared state on every node', async () => {
    const other = await cluster.startApi('api-health');
    const health = (await (await fetch(`${api.url}/health`)).json()) as Record<
      string,
      Record<string, unknown>
    >;
    assert.equal(health['status'] as unknown, 'ok');
    assert.equal(health['database']!['kind'], 'redis');
    assert.equal(health['database']!['ok'], true);
    assert.equal(health['storage']!['kind'], 's3');
    assert.equal(health['storage']!['ok'], true);
    assert.equal(health['storage']!['location'], `s3://${cluster.s3!.bucket}/${cluster.s3!.config.prefix}`);
    const metrics = await (await fetch(`${other.url}/metrics`)).text();
    assert.match(metrics, /^gabe_queue_depth \d+$/m);
    assert.match(metrics, /^gabe_jobs\{state="COMPLETED"\} [1-9]\d*$/m);
    const list = async (n: ClusterProcess) =>
      (await (await fetch(`${n.url}/jobs?limit=500`)).json()) as { total: number; jobs: JobJson[] };
    const [a, b] = await Promise.all([list(api), list(other)]);
    assert.equal(a.total, b.total);
    assert.deepEqual(
      a.jobs.map((j) => [j.job_id, j.status]),
      b.jobs.map((j) => [j.job_id, j.status]),
    );
    await other.stop();
  });

  it('counts rate_limit_per_minute across two API nodes', async () => {
    const env = { GABE_RATE_LIMIT_PER_MINUTE: '3' };
    const [a, b] = await Promise.all([cluster.startApi('api-rl-a', env), cluster.startApi('api-rl-b', env)]);
    const body = { url: `${origin.url}/v.mp4` };
    const answers = [];
    for (const node of [a, b, a, b]) answers.push((await post(node, '/download/mp4', body)).status);
    assert.deepEqual(answers, [200, 200, 200, 429]);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('finishes all 20 jobs when a busy worker is killed with SIGKILL', async () => {
    // Segments one at a time, each slow: a job takes about a second, long enough to be caught mid-way.
    origin.addFault({ match: /\.ts$/, latencyMs: 120 });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const body = {
        url: `${origin.url}/hls/index.m3u8`,
        video_name: `kill-${i}`,
        use_multithreading: false,
      };
      ids.push(((await (await post(api, '/download/', body)).json()) as JobJson).job_id);
    }
    const victim = workers[0]!;
    // Kill it while it holds jobs in the middle of their downloads.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const mine = ids.filter((id) => cluster.whereJobsRan().get(id)?.includes(victim.name));
      const running = await Promise.all(mine.map((id) => getJob(api, id)));
      // Far enough in that a checkpoint has been written (every 200 ms), not so far that it finishes first.
      if (running.some((j) => j.status === 'PROCESSING' && j.progress >= 25 && j.progress <= 75)) break;
      if (Date.now() > deadline) throw new Error('the worker never took a job');
      await new Promise((r) => setTimeout(r, 50));
    }
    await victim.kill9();
    for (const id of ids) {
      const job = await waitFor(api, id, isFinal, 180_000);
      assert.equal(job.status, 'COMPLETED', JSON.stringify(job));
    }
    const ran = cluster.whereJobsRan();
    const takenOver = ids.filter((id) => (ran.get(id) ?? []).length > 1);
    assert.ok(takenOver.length > 0, 'a job the killed worker held was finished by the other');
    for (const id of takenOver) assert.equal(ran.get(id)!.at(-1), 'worker-2');
    // The survivor shares the victim's temp_path (one host): it goes on from the checkpoint.
    assert.ok(
      takenOver.some((id) => cluster.jobLog('worker-2', id).includes('resuming track from checkpoint')),
      'a job taken over resumed from its checkpoint',
    );
    workers[0] = await cluster.startWorker('worker-3', 2);
    origin.reset();
  });

  it('cancels a running job within a second through a different API node than the one that took it', async () => {
    const other = await cluster.startApi('api-2');
    origin.addFault({ match: '/stall.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    origin.addFile('/stall.mp4', mp4.file);
    const id = await submit(api, 'mp4', `${origin.url}/stall.mp4`, 'to-cancel');
    await waitFor(api, id, (j) => j.status === 'PROCESSING', 30_000);
    const t0 = performance.now();
    const res = await fetch(`${other.url}/job/${id}`, { method: 'DELETE' });
    const elapsed = performance.now() - t0;
    const body = (await res.json()) as JobJson;
    assert.equal(res.status, 200);
    assert.equal(body.status, 'CANCELLED');
    assert.ok(elapsed < 1000, `cancelled in ${elapsed.toFixed(0)} ms`);
    assert.equal((await getJob(api, id)).status, 'CANCELLED');
    await other.stop();
    origin.reset();
  });

  it('counts max_jobs_per_ip across two API nodes', async () => {
    const env = { GABE_MAX_JOBS_PER_IP: '2' };
    const [a, b] = await Promise.all([cluster.startApi('api-ip-a', env), cluster.startApi('api-ip-b', env)]);
    origin.addFault({ match: '/stall.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    origin.addFile('/stall.mp4', mp4.file);
    const first = await submit(a, 'mp4', `${origin.url}/stall.mp4`, 'ip-1');
    const second = await submit(b, 'mp4', `${origin.url}/stall.mp4`, 'ip-2');
    const third = await post(a, '/download/mp4', { url: `${origin.url}/stall.mp4` });
    assert.equal(third.status, 429);
    assert.equal(((await third.json()) as { code: string }).code, 'GABE_ERR_IP_LIMIT');
    const fourth = await post(b, '/download/mp4', { url: `${origin.url}/stall.mp4` });
    assert.equal(fourth.status, 429);
    for (const id of [first, second]) await fetch(`${b.url}/job/${id}`, { method: 'DELETE' });
    await Promise.all([a.stop(), b.stop()]);
    origin.reset();
  });

  it('deletes the S3 objects of a deleted job', async () => {
    const id = await submit(api, 'mp4', `${origin.url}/v.mp4`, 'to-delete');
    const done = await waitFor(api, id, isFinal);
    assert.equal(done.status, 'COMPLETED');
    assert.equal((await fetch(`${api.url}/job/${id}`, { method: 'DELETE' })).status, 200);
    assert.equal(await objectExists(cluster, done.result!.output_path), false);
  });
});

describe('a cluster through a Redis restart and an S3 outage', () => {
  let origin: Origin;
  let hls: HlsMediaFixture;
  let cluster: Cluster;
  let api: ClusterProcess;

  before(async () => {
    hls = await makeHlsTs({ seconds: 8, segmentSeconds: 1 });
    origin = await startOrigin();
    origin.serveDir('/hls/', hls.dir);
    cluster = await startCluster({
      persistentRedis: true,
      config: { max_concurrent_downloads: 3 },
      s3Config: { upload_retries: 2 },
    });
    api = await cluster.startApi('api-1');
    await cluster.startWorker('worker-1', 3);
  });
  after(async () => {
    await cluster?.close();
    await origin?.close();
  });

  it('loses no job when Redis restarts while they run', async () => {
    origin.addFault({ match: /\.ts$/, latencyMs: 200 });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++)
      ids.push(await submit(api, 'hls', `${origin.url}/hls/index.m3u8`, `redis-${i}`));
    await waitFor(api, ids[0]!, (j) => j.status === 'PROCESSING', 30_000);
    await cluster.redis.stop();
    await new Promise((r) => setTimeout(r, 1000));
    await cluster.redis.start();
    for (const id of ids) {
      const job = await waitFor(api, id, isFinal, 180_000);
      assert.equal(job.status, 'COMPLETED', JSON.stringify(job));
    }
    origin.reset();
  });

  it('fails a job with GABE_ERR_UPLOAD when S3 stays down, keeping the file until the job is deleted', async () => {
    await cluster.s3!.stop();
    const health = await fetch(`${api.url}/health`);
    assert.equal(health.status, 503);
    assert.equal(((await health.json()) as { storage: { ok: boolean } }).storage.ok, false);
    const id = await submit(api, 'hls', `${origin.url}/hls/index.m3u8`, 'no-s3');
    const job = await waitFor(api, id, isFinal, 120_000);
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_UPLOAD');
    const kept = job.result!.output_path;
    assert.ok(existsSync(kept), `the file is kept at ${kept}`);
    await cluster.s3!.start();
    assert.equal((await fetch(`${api.url}/job/${id}`, { method: 'DELETE' })).status, 200);
    assert.equal(existsSync(kept), false);
  });
  it('stops a run that lost its lock and finishes the job once, with the right bytes, wherever it is taken over', async () => {
    // Two workers: the job taken back may land on the worker that still runs it, or on the other one.
    const second = await cluster.startWorker('worker-b', 3);
    // About 8 s of download, one segment at a time.
    origin.addFault({ match: /\.ts$/, latencyMs: 1000 });
    const res = await post(api, '/download/', {
      url: `${origin.url}/hls/index.m3u8`,
      video_name: 'lost-lock',
      use_multithreading: false,
    });
    const { job_id: id } = (await res.json()) as JobJson;
    await waitFor(api, id, (j) => j.status === 'PROCESSING' && j.progress >= 25, 30_000);
    // What a lock that expired while Redis was away (or the worker stalled) looks like to BullMQ.
    const redis = new Redis(cluster.redis.url);
    assert.equal(await redis.del(`gabe:bull:jobs:${id}:lock`), 1);
    await redis.quit();
    const job = await waitFor(api, id, isFinal, 120_000);
    assert.equal(job.status, 'COMPLETED', JSON.stringify(job));
    const logs = cluster.processes().map((p) => [p.name, cluster.jobLog(p.name, id)] as const);
    const said = (m: string) => logs.flatMap(([, lines]) => lines.filter((l) => l.startsWith(m))).length;
    assert.equal(said('job stopped: this worker lost its hold'), 1, JSON.stringify(logs));
    assert.equal(said('job completed'), 1, JSON.stringify(logs));
    origin.reset();
    const ref = await submit(api, 'hls', `${origin.url}/hls/index.m3u8`, 'lost-lock-ref');
    assert.equal((await waitFor(api, ref, isFinal)).status, 'COMPLETED');
    // A resumed HLS job may lay its MP4 out differently from one that ran in one go (as after a crash
    // in embedded mode): what must match is every decoded frame and sample.
    const decoded = async (jobId: string) => {
      const file = path.join(cluster.dir, `${jobId}.mp4`);
      writeFileSync(file, Buffer.from(await (await fetch(`${api.url}/job/${jobId}/file`)).arrayBuffer()));
      return [await decodedHash(file, 'v'), await decodedHash(file, 'a')];
    };
    assert.deepEqual(await decoded(id), await decoded(ref), JSON.stringify(logs));
    await second.stop();
  });

  it('fails a job with GABE_ERR_ATTEMPTS once its workers have died max_attempts times, rather than run it forever', async () => {
    await Promise.all(
      cluster
        .processes()
        .filter((p) => p.name.startsWith('worker'))
        .map((p) => p.stop()),
    );
    const env = { GABE_MAX_ATTEMPTS: '1' };
    const doomed = await cluster.startWorker('worker-doomed', 1, env);
    origin.addFault({ match: /\.ts$/, latencyMs: 400 });
    const res = await post(api, '/download/', {
      url: `${origin.url}/hls/index.m3u8`,
      video_name: 'attempts',
      use_multithreading: false,
    });
    const { job_id: id } = (await res.json()) as JobJson;
    await waitFor(api, id, (j) => j.status === 'PROCESSING', 30_000);
    await doomed.kill9();
    await cluster.startWorker('worker-next', 1, env);
    const job = await waitFor(api, id, isFinal, 60_000);
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_ATTEMPTS');
    origin.reset();
  });
});
