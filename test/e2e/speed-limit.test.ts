import assert from 'node:assert/strict';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { BURST_MS } from '../../src/net/rate-limiter.js';
import { gabe } from '../helpers/cli.js';
import { ffmpegCopy } from '../helpers/differential.js';
import {
  decodedHash,
  type HlsMediaFixture,
  type Mp4Fixture,
  makeHlsSeparateAudio,
  makeHlsTs,
  makeMp4,
  makeTempDir,
} from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type LoggedRequest, type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

const KB = 1024;

/**
 * The least time `bytes` can take under `limit` bytes/s: the limiter starts with one burst of tokens
 * (BURST_MS of the rate) and hands out the rest at the rate. Only a lower bound is asserted: a loaded
 * machine only makes a download slower.
 */
const leastMs = (bytes: number, limit: number) => ((bytes - (limit * BURST_MS) / 1000) * 1000) / limit;

/**
 * How many of `requests` arrived, over distinct connections, within `ms` of the first. When the limit
 * needs more than `ms` to deliver what the first one asked for, those were being read at the same time.
 * The origin's own end times cannot show that for a limited job: loopback socket buffers can take a
 * whole response (2.5 MB on a CI machine) long before the limited client reads it, and the origin
 * logs the response as ended.
 */
function arrivedTogether(requests: LoggedRequest[], ms: number): number {
  const first = Math.min(...requests.map((r) => r.at));
  return new Set(requests.filter((r) => r.at - first < ms).map((r) => r.remotePort)).size;
}

describe('speed limits', () => {
  let origin: Origin;
  let hls: HlsMediaFixture;
  let mp4: Mp4Fixture;
  let svc: TestService;
  let hlsReference: string;
  let ip = 0;

  before(async () => {
    // Three segments of about 330 KB: more than a transport buffers before it stops reading a socket
    // (256 KB), so each connection stands paused for seconds while the limit lets its bytes through.
    // An MP4 large enough for two parallel ranges.
    hls = await makeHlsTs({ seconds: 6, segmentSeconds: 2, kbps: 1200 });
    mp4 = await makeMp4({ seconds: 8, kbps: 2500, width: 640, height: 360 });
    origin = await startOrigin();
    origin.serveDir('/hls/', hls.dir);
    origin.addFile('/big.mp4', mp4.file);
    // The idle timeout (connection_timeout) and the speed floor are both set below what the limited
    // transfers take per connection: waiting on the limit must count as neither.
    svc = await startTestService({
      max_jobs_per_ip: 0,
      max_retries: 0,
      connection_timeout: 1,
      low_speed_limit: 700 * KB,
      low_speed_time: 1,
    });
    hlsReference = await ffmpegCopy(
      `${origin.url}/hls/${hls.playlistName}`,
      path.join(await makeTempDir('ref'), 'ref.mp4'),
      ['-allowed_extensions', 'ALL'],
    );
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  async function submit(s: TestService, route: string, body: Record<string, unknown>): Promise<string> {
    const res = await s.app.inject({
      method: 'POST',
      url: route,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(body),
      remoteAddress: `10.9.0.${++ip % 250}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return res.json().job_id as string;
  }

  /**
   * Runs a job to its end: its wall time, and the highest speed_bps it reported once it had been
   * reading for 1.5 s (before that, the first burst weighs too much in the five-second average).
   */
  async function timed(s: TestService, route: string, body: Record<string, unknown>) {
    const started = performance.now();
    const id = await submit(s, route, body);
    let peak = 0;
    let reading: number | null = null;
    let job: Job;
    for (;;) {
      job = (await s.app.inject({ method: 'GET', url: `/job/${id}` })).json() as Job;
      if (!['PENDING', 'PROCESSING'].includes(job.status)) break;
      const now = performance.now();
      if (reading === null && (job.downloaded_bytes > 0 || job.speed_bps > 0)) reading = now;
      if (reading !== null && now - reading >= 1500) peak = Math.max(peak, job.speed_bps);
      await new Promise((r) => setTimeout(r, 100));
    }
    job = await s.waitFor(id, ['COMPLETED', 'FAILED', 'CANCELLED']);
    return { job, ms: performance.now() - started, peak };
  }

  let limitedHlsMs = 0;

  it('an HLS job with max_speed takes at least its size over the limit, decodes the same as ffmpeg -c copy, and does not time out', async () => {
    const limit = 256 * KB;
    const retries: string[] = [];
    const onRetry = (id: string) => retries.push(id);
    svc.scheduler.on('retry', onRetry);
    try {
      const { job, ms, peak } = await timed(svc, '/download/', {
        url: `${origin.url}/hls/${hls.playlistName}`,
        max_speed: '256K',
      });
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      assert.ok(ms >= leastMs(hls.totalBytes, limit), `${hls.totalBytes} bytes in ${Math.round(ms)} ms`);
      assert.equal(await decodedHash(job.result!.output_path), await decodedHash(hlsReference));
      assert.equal(await decodedHash(job.result!.output_path, 'a'), await decodedHash(hlsReference, 'a'));
      // speed_bps shows the limited speed (a five-second window: one burst and a segment over it at most).
      assert.ok(peak > 0 && peak <= limit * 1.6, `speed_bps peaked at ${peak}`);
      // Each connection stood paused longer than the 1 s idle timeout, with less than the 700 KB/s
      // floor: a timeout would have failed the job (max_retries 0) or shown as a retry.
      assert.deepEqual(retries, [], 'no request timed out');
      // Several segments were in flight at once: the limit is one budget shared by all of them.
      const segments = origin.requests.filter((r) => r.path.endsWith('.ts'));
      const segmentMs = leastMs(hls.totalBytes / hls.segmentCount / 2, limit);
      assert.ok(arrivedTogether(segments, segmentMs) >= 2, 'segments over several connections at once');
      limitedHlsMs = ms;
    } finally {
      svc.scheduler.off('retry', onRetry);
    }
  });

  it('an HLS job with a separate audio rendition keeps both tracks within one max_speed', async () => {
    // Low video bit rate: the audio is a good part of the bytes, so a budget per track would show.
    const sep = await makeHlsSeparateAudio({ kbps: 100 });
    origin.serveDir('/sep/', sep.dir);
    const limit = 32 * KB;
    const { job, ms } = await timed(svc, '/download/', {
      url: `${origin.url}/sep/${sep.masterName}`,
      max_speed: '32K',
    });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const english = sep.audio.find((a) => a.default)!;
    const both = sep.video.totalBytes + english.totalBytes;
    // Each track alone would be allowed the whole limit if the budget were per track.
    assert.ok(
      ms >= leastMs(both, limit),
      `${both} bytes (video ${sep.video.totalBytes}) in ${Math.round(ms)} ms`,
    );
    assert.equal(
      await decodedHash(job.result!.output_path, 'a'),
      await decodedHash(path.join(sep.dir, english.uri), 'a'),
    );
  });

  it('a job without max_speed is not slowed: much faster than the limited one', async () => {
    assert.ok(limitedHlsMs > 0, 'runs after the limited job');
    const { job, ms } = await timed(svc, '/download/', { url: `${origin.url}/hls/${hls.playlistName}` });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.ok(
      ms * 2 < limitedHlsMs,
      `${Math.round(ms)} ms unlimited, ${Math.round(limitedHlsMs)} ms limited`,
    );
  });

  it('an MP4 job in parallel ranges keeps to max_speed across its connections, its media intact, without timing out', async () => {
    const limit = 1024 * KB;
    const retries: string[] = [];
    const onRetry = (id: string) => retries.push(id);
    svc.scheduler.on('retry', onRetry);
    try {
      const { job, ms, peak } = await timed(svc, '/download/mp4', {
        url: `${origin.url}/big.mp4`,
        max_speed: '1M',
      });
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      // The same media as the source; the moov carries the job's title and source (metadata.test.ts).
      assert.equal(mediaIdentity(job.result!.output_path), mediaIdentity(mp4.file));
      assert.ok(ms >= leastMs(mp4.size, limit), `${mp4.size} bytes in ${Math.round(ms)} ms`);
      assert.ok(peak > 0 && peak <= limit * 1.5, `speed_bps peaked at ${peak}`);
      const ranges = origin.requests.filter((r) => r.path === '/big.mp4');
      // The second range was asked for before the limit could have delivered the first half.
      const halfMs = leastMs(mp4.size / 2, limit);
      assert.ok(arrivedTogether(ranges, halfMs) >= 2, 'byte ranges over several connections at once');
      // Each connection got half the limit or less, under the 700 KB/s floor.
      assert.deepEqual(retries, []);
    } finally {
      svc.scheduler.off('retry', onRetry);
    }
  });

  it('two concurrent jobs under max_total_speed together stay within the total, and both finish', async () => {
    const total = 512 * KB;
    const shared = await startTestService({
      max_jobs_per_ip: 0,
      max_total_speed: '512K',
      max_concurrent_downloads: 4,
    });
    const started = performance.now();
    const [a, b] = await Promise.all([
      timed(shared, '/download/', { url: `${origin.url}/hls/${hls.playlistName}` }),
      timed(shared, '/download/mp4', { url: `${origin.url}/big.mp4`, max_speed: '2M' }),
    ]);
    const ms = performance.now() - started;
    assert.equal(a.job.status, 'COMPLETED', a.job.error ?? '');
    assert.equal(b.job.status, 'COMPLETED', b.job.error ?? '');
    assert.ok(ms >= leastMs(hls.totalBytes + mp4.size, total), `${Math.round(ms)} ms for both`);
    assert.ok(b.peak <= total * 1.5, `the MP4 job's speed_bps peaked at ${b.peak}`);
  });

  it('jobs take turns at max_total_speed: one with nine connections does not take nine shares', async () => {
    const large = await makeMp4({ seconds: 20, kbps: 4000, width: 640, height: 360 });
    origin.addFile('/large.mp4', large.file);
    const total = 512 * KB;
    const shared = await startTestService({ max_jobs_per_ip: 0, max_total_speed: '512K' });
    // About 10 MB in nine parallel ranges, against 2.6 MB in two.
    const nine = await submit(shared, '/download/mp4', { url: `${origin.url}/large.mp4` });
    const two = await submit(shared, '/download/mp4', { url: `${origin.url}/big.mp4` });
    const sample = async () => {
      const at = performance.now();
      const jobs = [nine, two].map(
        async (id) => (await shared.app.inject({ method: 'GET', url: `/job/${id}` })).json() as Job,
      );
      const [a, b] = await Promise.all(jobs);
      return { at, nine: a!.downloaded_bytes, two: b!.downloaded_bytes };
    };
    await shared.waitFor(two, (j) => j.downloaded_bytes > 0, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    const first = await sample();
    await new Promise((r) => setTimeout(r, 2000));
    const last = await sample();
    const nineGot = last.nine - first.nine;
    const twoGot = last.two - first.two;
    const seconds = (performance.now() - first.at) / 1000;
    const ranges = origin.requests.filter((r) => r.path === '/large.mp4');
    assert.ok(arrivedTogether(ranges, leastMs(large.size / 9, total)) >= 4, 'nine ranges at once');
    // Shared per connection, the nine-range job would read four to five times as much as the other.
    assert.ok(nineGot <= twoGot * 1.6 && twoGot <= nineGot * 1.6, `nine ranges ${nineGot}, two ${twoGot}`);
    assert.ok(nineGot + twoGot <= total * seconds + total * 0.5, `${nineGot + twoGot} bytes in ${seconds} s`);
    for (const id of [nine, two]) await shared.app.inject({ method: 'DELETE', url: `/job/${id}` });
    for (const id of [nine, two]) await shared.waitFor(id, ['CANCELLED', 'COMPLETED', 'FAILED']);
  });

  it('a limited job waiting for its budget is cancelled at once, its waits ended', async () => {
    // At 16 KB/s the playlist would take a minute: only a cancel that reaches the waiting reads ends it
    // within the wait below.
    const id = await submit(svc, '/download/', {
      url: `${origin.url}/hls/${hls.playlistName}`,
      max_speed: '16K',
    });
    await svc.waitFor(id, ['PROCESSING'], 10_000);
    await new Promise((r) => setTimeout(r, 500));
    const del = await svc.app.inject({ method: 'DELETE', url: `/job/${id}` });
    assert.equal(del.statusCode, 200, del.body);
    const job = await svc.waitFor(id, ['COMPLETED', 'FAILED', 'CANCELLED'], 15_000);
    assert.equal(job.status, 'CANCELLED');
  });

  it('gabe download --limit-rate limits the download; --max-speed is the same flag; gabe submit sends max_speed', async () => {
    const small = await makeMp4({ seconds: 4 });
    origin.addFile('/small.mp4', small.file);
    const limit = 100 * KB;
    const out = path.join(tempDir(), 'limited.mp4');
    const started = performance.now();
    const run = gabe(['download', `${origin.url}/small.mp4`, '-o', out, '--limit-rate', '100K']);
    assert.equal(await run.exit, 0, run.output());
    const ms = performance.now() - started;
    assert.equal(mediaIdentity(out), mediaIdentity(small.file));
    assert.ok(ms >= leastMs(small.size, limit), `${small.size} bytes in ${Math.round(ms)} ms`);
    // gabe submit sends it as the job's max_speed.
    const listening = await startTestService({ max_jobs_per_ip: 0 }, { listen: true });
    const submitted = gabe([
      'submit',
      `${origin.url}/small.mp4`,
      '--mp4',
      '--max-speed',
      '100K',
      '--json',
      '-s',
      listening.url,
    ]);
    assert.equal(await submitted.exit, 0, submitted.output());
    const id = JSON.parse(submitted.stdout()).job_id as string;
    assert.equal(listening.store.get(id)?.request.max_speed, '100K');
    assert.equal((await listening.waitFor(id, ['COMPLETED', 'FAILED'])).status, 'COMPLETED');
    const bad = gabe(['download', `${origin.url}/small.mp4`, '--max-speed', 'fast']);
    assert.notEqual(await bad.exit, 0);
    assert.match(bad.stderr(), /max_speed must be bytes per second/);
  });
});
