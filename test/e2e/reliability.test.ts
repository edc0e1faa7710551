import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { JobResponse } from '../../src/api/schemas.js';
import { readSavedRanges, savedBytes } from '../helpers/checkpoint.js';
import { gabe, waitForOutput } from '../helpers/cli.js';
import {
  decodedVideoHash,
  type HlsAesFixture,
  type HlsMediaFixture,
  type Mp4Fixture,
  makeHlsAes,
  makeHlsTs,
  makeMp4,
} from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

const post = (base: string, route: string, body: unknown) =>
  fetch(`${base}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, json: (await r.json()) as JobResponse }));

async function waitJob(
  base: string,
  id: string,
  done: (j: JobResponse) => boolean,
  ms = 60_000,
): Promise<JobResponse> {
  const deadline = Date.now() + ms;
  for (;;) {
    const job = (await (await fetch(`${base}/job/${id}`)).json()) as JobResponse;
    if (done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} stuck: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `gabe serve` as a real child process on its own config folder, as a user runs it. */
async function serveChild(dir: string, config: Record<string, unknown>) {
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ allow_private_networks: true, max_jobs_per_ip: 0, ...config }));
  const run = gabe(['serve', '--config', file, '--port', '0']);
  const [, url] = await waitForOutput(run.output, /listening on (http:\/\/\S+)/);
  return { ...run, url: url! };
}

describe('reliability', () => {
  let origin: Origin;
  let ts: HlsMediaFixture;
  let aes: HlsAesFixture;
  let mp4: Mp4Fixture;

  before(async () => {
    origin = await startOrigin({ seed: 7 });
    ts = await makeHlsTs({ seconds: 40, segmentSeconds: 1 });
    aes = await makeHlsAes({ iv: 'implicit', rotateEvery: 3, seconds: 12, segmentSeconds: 1 });
    mp4 = await makeMp4({ seconds: 8, kbps: 2500, width: 640, height: 360 });
    origin.serveDir('/ts/', ts.dir);
    origin.serveDir('/aes/', aes.dir);
    origin.addFile('/v.mp4', mp4.file);
  });
  afterEach(async () => {
    await closeAllServices();
    origin.reset();
  });
  after(() => origin.close());

  it('downloads through 15% random failures (500, reset, truncation, stalls) with output identical to a clean run', async () => {
    const svc = await startTestService({ connection_timeout: 1, max_retries: 6, max_jobs_per_ip: 0 });
    const hlsUrl = `${origin.url}/aes/${aes.playlistName}`;
    const clean = await svc.waitFor(
      (
        await svc.app.inject({
          method: 'POST',
          url: '/download/',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ url: hlsUrl, video_name: 'clean' }),
        })
      ).json().job_id,
      ['COMPLETED', 'FAILED'],
    );
    assert.equal(clean.status, 'COMPLETED', clean.error ?? '');
    origin.faults(
      { probability: 0.04, status: 500 },
      { probability: 0.04, reset: 'before-headers' },
      { probability: 0.04, truncate: { fraction: 0.5 } },
      { probability: 0.03, stall: { ms: 3000, afterFraction: 0.3 } },
    );
    const noisy = await svc.waitFor(
      (
        await svc.app.inject({
          method: 'POST',
          url: '/download/',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ url: hlsUrl, video_name: 'noisy' }),
        })
      ).json().job_id,
      ['COMPLETED', 'FAILED'],
    );
    assert.equal(noisy.status, 'COMPLETED', noisy.error ?? '');
    assert.ok(
      origin.requests.some((r) => r.faults.length > 0),
      'faults were injected',
    );
    assert.equal(
      await decodedVideoHash(noisy.result!.output_path),
      await decodedVideoHash(clean.result!.output_path),
    );
    const mp4Job = await svc.waitFor(
      (
        await svc.app.inject({
          method: 'POST',
          url: '/download/mp4',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ url: `${origin.url}/v.mp4` }),
        })
      ).json().job_id,
      ['COMPLETED', 'FAILED'],
    );
    assert.equal(mp4Job.status, 'COMPLETED', mp4Job.error ?? '');
    assert.equal(mediaIdentity(mp4Job.result!.output_path), mediaIdentity(mp4.file));
  });

  it('re-fetches the playlist when signed segment and key URLs expire mid-job, and continues', async () => {
    const ttlMs = 1200;
    const token = () => Math.floor(Date.now() / ttlMs);
    const valid = (url: URL) => Number(url.searchParams.get('t')) === token();
    const text = readFileSync(aes.playlist, 'utf8');
    const playlistDir = path.dirname(aes.playlist);
    // Every URI in the playlist gets the current token, as a CDN's signer would.
    origin.route('/signed/index.m3u8', (_req, _res, ctx) =>
      ctx.send(
        text
          .replace(/^(seg_\d+\.ts)$/gm, `$1?t=${token()}`)
          .replace(/URI="([^"]+)"/g, `URI="$1?t=${token()}"`),
        { contentType: 'application/vnd.apple.mpegurl' },
      ),
    );
    const files = [...aes.segments, ...aes.keys.map((k) => k.uri)];
    for (const name of files) {
      origin.route(`/signed/${name}`, (_req, _res, ctx) =>
        valid(ctx.url)
          ? ctx.sendFile(path.join(playlistDir, name))
          : ctx.send('expired\n', { status: 403, contentType: 'text/plain' }),
      );
    }
    origin.addFault({ match: /\/signed\/seg_/, latencyMs: 300 });
    const svc = await startTestService({ segment_concurrency: 2, max_jobs_per_ip: 0 });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/signed/index.m3u8` }),
    });
    const job = await svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED']);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.ok(
      origin.requests.some((r) => r.status === 403),
      'some URLs expired during the job',
    );
    assert.ok(origin.countRequests('/signed/index.m3u8') > 1, 'the playlist was reloaded');
    assert.equal(
      await decodedVideoHash(job.result!.output_path),
      await decodedVideoHash(`${origin.url}/aes/${aes.playlistName}`),
    );
  });

  it('fails with GABE_ERR_SEGMENT naming segment and status when reloading does not help', async () => {
    origin.addFault({ match: /\/ts\/seg_005\.ts$/, status: 410 });
    const svc = await startTestService({ max_jobs_per_ip: 0 });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/ts/${ts.playlistName}` }),
    });
    const job = await svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED']);
    assert.equal(job.error_code, 'GABE_ERR_SEGMENT');
    assert.match(job.error ?? '', /segment 5 .*HTTP 410/);
  });

  it('after kill -9 mid-job, a restarted service fetches only the missing segments and completes', async () => {
    const dir = tempDir();
    origin.addFault({ match: /\/ts\/seg_\d+\.ts$/, latencyMs: 150 });
    const first = await serveChild(dir, { segment_concurrency: 4, segment_concurrency_max: 4 });
    const submitted = await post(first.url, '/download/', { url: `${origin.url}/ts/${ts.playlistName}` });
    assert.equal(submitted.status, 200);
    const id = submitted.json.job_id;
    await waitJob(first.url, id, (j) => j.downloaded_segments >= ts.segmentCount / 2);
    first.child.kill('SIGKILL');
    await first.exit;
    const before = origin.countRequests(/\/ts\/seg_\d+\.ts$/);
    assert.ok(before < ts.segmentCount, 'killed before the end');

    const second = await serveChild(dir, { segment_concurrency: 4, segment_concurrency_max: 4 });
    try {
      const done = await waitJob(second.url, id, (j) => j.status === 'COMPLETED' || j.status === 'FAILED');
      assert.equal(done.status, 'COMPLETED', done.error ?? '');
      const total = origin.countRequests(/\/ts\/seg_\d+\.ts$/);
      // Only what was in flight when the process died is fetched twice.
      assert.ok(
        total <= ts.segmentCount + 4 * 4,
        `${total} segment requests for ${ts.segmentCount} segments`,
      );
      // The reference from the fixture's own files, which the origin serves as they are: through the
      // origin it would wait out the 150 ms latency of each of 40 segments, one at a time.
      assert.equal(await decodedVideoHash(done.result!.output_path), await decodedVideoHash(ts.playlist));
    } finally {
      second.child.kill('SIGTERM');
      await second.exit;
    }
  });

  it('after kill -9 mid-download, an MP4 job resumes with Range and ends byte-identical', async () => {
    const dir = tempDir();
    origin.addFault({ match: '/v.mp4', throttleBytesPerSec: 400_000 });
    // Bytes reach the disk in chunk_size writes: what is on disk when the process dies is what resumes.
    const first = await serveChild(dir, { chunk_size: 256 * 1024 });
    const { json } = await post(first.url, '/download/mp4', { url: `${origin.url}/v.mp4` });
    await waitJob(first.url, json.job_id, (j) => j.downloaded_bytes > 600_000);
    // What the checkpoint beside the part file claims is what survives the kill.
    const checkpointFile = path.join(dir, 'temp', json.job_id, 'download.part.json');
    const saved = () => readSavedRanges(checkpointFile);
    while (savedBytes(saved()) < 512 * 1024) await new Promise((r) => setTimeout(r, 20));
    first.child.kill('SIGKILL');
    await first.exit;
    const cp = saved()!;
    assert.equal(cp.size, mp4.size);
    const missing = cp.pieces.filter(([s, e, d]) => s + d < e).map(([s, e, d]) => [s + d, e - 1] as const);
    origin.reset();
    const second = await serveChild(dir, { chunk_size: 256 * 1024 });
    try {
      const done = await waitJob(
        second.url,
        json.job_id,
        (j) => j.status === 'COMPLETED' || j.status === 'FAILED',
      );
      assert.equal(done.status, 'COMPLETED', done.error ?? '');
      const resumed = origin.requests
        .filter((r) => r.path === '/v.mp4')
        .map((r) => /^bytes=(\d+)-(\d+)$/.exec(String(r.headers['range'] ?? '')))
        .map((m) => (m ? { start: Number(m[1]), end: Number(m[2]) } : null));
      assert.ok(resumed.length >= 1);
      // Only missing bytes are asked for again, each with a bounded Range, and all of them are.
      assert.ok(
        resumed.every((r) => r !== null && missing.some(([s, e]) => r.start >= s && r.end <= e)),
        `requests ${JSON.stringify(resumed)} vs missing ${JSON.stringify(missing)}`,
      );
      for (const [s, e] of missing) {
        let next = s;
        for (const r of resumed
          .filter((r) => r!.start >= s && r!.end <= e)
          .sort((a, b) => a!.start - b!.start)) {
          if (r!.start <= next) next = Math.max(next, r!.end + 1);
        }
        assert.equal(next, e + 1, `bytes ${s}-${e} fetched`);
      }
      assert.equal(mediaIdentity(done.result!.output_path), mediaIdentity(mp4.file));
    } finally {
      second.child.kill('SIGTERM');
      await second.exit;
    }
  });

  it('on SIGTERM stops within 10 s keeping the job, which resumes on the next start', async () => {
    const dir = tempDir();
    origin.addFault({ match: /\/ts\/seg_\d+\.ts$/, latencyMs: 200 });
    const first = await serveChild(dir, { segment_concurrency: 2, segment_concurrency_max: 2 });
    const { json } = await post(first.url, '/download/', { url: `${origin.url}/ts/${ts.playlistName}` });
    await waitJob(first.url, json.job_id, (j) => j.downloaded_segments >= 5);
    const stopping = Date.now();
    first.child.kill('SIGTERM');
    assert.equal(await first.exit, 0);
    assert.ok(Date.now() - stopping < 10_000);
    const db = new Database(path.join(dir, 'gabe.db'), { readonly: true });
    const row = db.prepare('SELECT status, downloaded_segments FROM jobs WHERE id = ?').get(json.job_id) as {
      status: string;
      downloaded_segments: number;
    };
    db.close();
    assert.equal(row.status, 'PENDING');
    assert.ok(row.downloaded_segments >= 5, 'progress was checkpointed');
    const second = await serveChild(dir, { segment_concurrency: 2, segment_concurrency_max: 2 });
    try {
      const done = await waitJob(
        second.url,
        json.job_id,
        (j) => j.status === 'COMPLETED' || j.status === 'FAILED',
      );
      assert.equal(done.status, 'COMPLETED', done.error ?? '');
      assert.ok(origin.countRequests(/\/ts\/seg_\d+\.ts$/) <= ts.segmentCount + 4);
    } finally {
      second.child.kill('SIGTERM');
      await second.exit;
    }
  });

  it('after its process is killed max_attempts times, a job fails with GABE_ERR_ATTEMPTS instead of running again', async () => {
    const dir = tempDir();
    // The job runs until its process dies: the origin never answers.
    origin.addFault({ match: '/hang.mp4', stall: { ms: 120_000, beforeHeaders: true } });
    const config = { max_attempts: 2, connection_timeout: 60 };
    let run = await serveChild(dir, config);
    const { json } = await post(run.url, '/download/mp4', { url: `${origin.url}/hang.mp4` });
    const id = json.job_id;
    for (let attempt = 1; attempt <= 2; attempt++) {
      await waitJob(run.url, id, (j) => j.status === 'PROCESSING');
      while (origin.countRequests('/hang.mp4') < attempt) await new Promise((r) => setTimeout(r, 20));
      run.child.kill('SIGKILL');
      await run.exit;
      run = await serveChild(dir, config);
    }
    try {
      const job = await waitJob(
        run.url,
        id,
        (j) => j.status !== 'PENDING' && j.status !== 'PROCESSING',
        10_000,
      );
      assert.equal(job.status, 'FAILED');
      assert.equal(job.error_code, 'GABE_ERR_ATTEMPTS');
      assert.match(job.error ?? '', /max_attempts is 2/);
      assert.equal(origin.countRequests('/hang.mp4'), 2, 'not started a third time');
    } finally {
      run.child.kill('SIGTERM');
      await run.exit;
    }
  });

  it('answers 503 to submissions once shutdown has begun', async () => {
    origin.addFault({ match: '/v.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    const svc = await startTestService({ max_jobs_per_ip: 0, connection_timeout: 30 });
    const closing = svc.scheduler.stop();
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/v.mp4` }),
    });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().code, 'GABE_ERR_SHUTTING_DOWN');
    assert.ok(Number(res.headers['retry-after']) > 0);
    await closing;
  });
});
