import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job, JobResult } from '../../src/jobs/types.js';
import { mp4Downloader } from '../../src/pipeline/mp4/job.js';
import {
  checkpointOf,
  connectionsFor,
  describeChange,
  MIN_PIECE_BYTES,
  parseCheckpoint,
  RangePlan,
} from '../../src/pipeline/mp4/range-plan.js';
import { ProgressTracker } from '../../src/pipeline/progress.js';
import { loadConfig } from '../../src/service/config.js';
import { createLogger } from '../../src/service/log.js';
import { readSavedRanges, savedBytes } from '../helpers/checkpoint.js';
import { ffprobeJson, type Mp4Fixture, makeHlsTs, makeMp4 } from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type LoggedRequest, type Origin, startOrigin } from '../helpers/origin.js';
import { startProxy } from '../helpers/proxy.js';
import { closeAllServices, startTestService, type TestService, testFfmpeg } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

/** `bytes=a-b` (or `bytes=a-`, b = null) of a logged request; null without a Range header. */
function rangeOf(r: LoggedRequest): { start: number; end: number | null } | null {
  const m = /^bytes=(\d+)-(\d*)$/.exec(String(r.headers['range'] ?? ''));
  return m ? { start: Number(m[1]), end: m[2] === '' ? null : Number(m[2]) } : null;
}

/** The most requests to `pathname` that were open at the same moment. */
function maxOverlap(requests: LoggedRequest[]): number {
  const events = requests.flatMap((r) => [
    { t: r.at, d: 1 },
    { t: r.endedAt || Number.POSITIVE_INFINITY, d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let open = 0;
  let max = 0;
  for (const e of events) {
    open += e.d;
    max = Math.max(max, open);
  }
  return max;
}

/** A non-first piece: a bounded range that does not start at byte 0. */
const laterPiece = (r: { headers: Record<string, unknown> }) =>
  /^bytes=[1-9]\d*-\d+$/.test(String(r.headers['range'] ?? ''));

describe('MP4 downloads against a faulty origin', () => {
  let origin: Origin;
  let small: Mp4Fixture;
  let big: Mp4Fixture;
  /** About 10 MB: nine 1 MiB-plus pieces at the default 16 connections. */
  let large: Mp4Fixture;
  let svc: TestService;
  let ip = 0;

  before(async () => {
    small = await makeMp4({ seconds: 2 });
    big = await makeMp4({ seconds: 8, kbps: 2500, width: 640, height: 360 });
    large = await makeMp4({ seconds: 20, kbps: 4000, width: 640, height: 360 });
    origin = await startOrigin();
    origin.addFile('/small.mp4', small.file);
    origin.addFile('/big.mp4', big.file);
    origin.addFile('/large.mp4', large.file);
    svc = await startTestService({ connection_timeout: 1, max_retries: 3, chunk_size: 64 * 1024 });
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  async function download(url: string, extra: Record<string, unknown> = {}): Promise<Job> {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url, ...extra }),
      remoteAddress: `10.1.0.${++ip}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  }

  const sameBytes = (job: Job, fixture: Mp4Fixture) => {
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    // The same file but for the title and source tags in its moov (pipeline/mp4/file-tags.ts).
    assert.equal(
      mediaIdentity(job.result!.output_path),
      mediaIdentity(fixture.file),
      'the same media and tables',
    );
  };

  it('follows redirects to the file', async () => {
    origin.redirect('/r1', '/r2', 301);
    origin.redirect('/r2', '/big.mp4', 302);
    sameBytes(await download(`${origin.url}/r1`), big);
  });

  it('completes without a Content-Length (chunked), as one stream', async () => {
    origin.addFault({ match: '/large.mp4', chunked: true });
    const job = await download(`${origin.url}/large.mp4`);
    sameBytes(job, large);
    assert.equal(job.total_bytes, null);
    assert.equal(origin.countRequests('/large.mp4'), 1);
  });

  it('retries 503 (honouring Retry-After) and 500 with back-off, then succeeds', async () => {
    origin.addFault({ match: '/small.mp4', status: 503, retryAfter: 1, times: 1 });
    origin.addFault({ match: '/small.mp4', skip: 1, status: 500, times: 1 });
    const started = Date.now();
    sameBytes(await download(`${origin.url}/small.mp4`), small);
    assert.equal(origin.countRequests('/small.mp4'), 3);
    assert.ok(Date.now() - started >= 1000, 'waited for Retry-After');
  });

  it('downloads a small file with one request on one connection', async () => {
    sameBytes(await download(`${origin.url}/small.mp4`), small);
    const gets = origin.requests.filter((r) => r.path === '/small.mp4');
    assert.equal(gets.length, 1);
    assert.equal(gets[0]!.headers['range'], 'bytes=0-');
    assert.equal(gets[0]!.status, 206);
    assert.equal(gets[0]!.completed, true, 'read to its end, not cut');
  });

  it('downloads a large file in byte ranges over several connections at once, byte-identical', async () => {
    // Each response is paced, as a CDN caps each connection: only parallel ranges go faster.
    origin.addFault({ match: '/large.mp4', throttleBytesPerSec: 4_000_000 });
    const started = Date.now();
    const job = await download(`${origin.url}/large.mp4`);
    sameBytes(job, large);
    assert.equal(job.total_bytes, large.size);
    const gets = origin.requests.filter((r) => r.path === '/large.mp4');
    assert.equal(gets[0]!.headers['range'], 'bytes=0-', 'the first request learns size and Range support');
    const pieces = gets.slice(1).map(rangeOf);
    assert.ok(pieces.length >= 4, `${gets.length} requests`);
    assert.ok(
      pieces.every((r) => r !== null && r.end !== null && r.start > 0),
      'every later request asks for a bounded range',
    );
    assert.ok(maxOverlap(gets) >= 4, `at most ${maxOverlap(gets)} requests at once`);
    assert.ok(new Set(gets.map((r) => r.remotePort)).size >= 4, 'over several connections');
    // One connection at 4 MB/s would take 2.5 s.
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  /** The large file through a service that starts at 2 connections and may grow to 8. */
  async function rampDownload(): Promise<Job> {
    const ramp = await startTestService({
      connection_timeout: 2,
      chunk_size: 64 * 1024,
      mp4_connections: 2,
      mp4_connections_max: 8,
      max_retries: 3,
    });
    origin.addFault({ match: '/large.mp4', throttleBytesPerSec: 1_000_000 });
    const res = await ramp.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/large.mp4` }),
    });
    return ramp.waitFor(res.json().job_id, ['COMPLETED', 'FAILED']);
  }

  it('adds connections while throughput grows, up to mp4_connections_max, byte-identical', async () => {
    sameBytes(await rampDownload(), large);
    const most = maxOverlap(origin.requests.filter((r) => r.path === '/large.mp4'));
    assert.ok(most > 2 && most <= 8, `${most} requests at once, from 2 up to 8`);
  });

  it('opens no more connections once the origin answers 503, and finishes byte-identical', async () => {
    // The second range request is pushed back: the limit halves and never grows again.
    origin.addFault({
      match: (r) => r.path === '/large.mp4' && r.headers['range'] !== 'bytes=0-',
      times: 1,
      status: 503,
    });
    sameBytes(await rampDownload(), large);
    const gets = origin.requests.filter((r) => r.path === '/large.mp4' && r.status !== 503);
    assert.ok(maxOverlap(gets) <= 2, `${maxOverlap(gets)} requests at once after the 503`);
  });

  it('streams the whole file over one connection when the server ignores Range', async () => {
    origin.addFault({ match: '/large.mp4', ignoreRange: true });
    sameBytes(await download(`${origin.url}/large.mp4`), large);
    const gets = origin.requests.filter((r) => r.path === '/large.mp4');
    assert.equal(gets.length, 1);
    assert.equal(gets[0]!.status, 200);
  });

  it('retries a byte range that is cut short from the byte it reached', async () => {
    origin.addFault({ match: laterPiece, truncate: { bytes: 300_000 }, times: 1 });
    sameBytes(await download(`${origin.url}/large.mp4`), large);
    const gets = origin.requests.filter((r) => r.path === '/large.mp4');
    const cut = gets.find((r) => r.faults.length > 0)!;
    assert.equal(cut.completed, false);
    // The origin sent 300,000 bytes before resetting; a reset may discard some of them in flight, so
    // the retry starts past the piece's start and at most at byte 300,000 of it, never from scratch.
    const start = rangeOf(cut)!.start;
    const retry = gets.find((r) => {
      const s = rangeOf(r)?.start ?? -1;
      return r.at >= cut.at && r !== cut && s > start && s <= start + 300_000;
    });
    assert.ok(
      retry,
      `a request resumes inside the cut range: ${gets.map((r) => r.headers['range']).join(', ')}`,
    );
    assert.ok(rangeOf(retry)!.end! <= rangeOf(cut)!.end!, 'within the range that was cut');
  });

  it('retries a stalled byte range after the read timeout, from the byte it reached', async () => {
    origin.addFault({ match: laterPiece, stall: { ms: 5000, afterBytes: 200_000 }, times: 1 });
    const started = Date.now();
    sameBytes(await download(`${origin.url}/large.mp4`), large);
    assert.ok(Date.now() - started < 5000, 'did not wait for the stall to end');
    const gets = origin.requests.filter((r) => r.path === '/large.mp4');
    const stalled = gets.find((r) => r.faults.length > 0)!;
    const start = rangeOf(stalled)!.start;
    assert.ok(
      gets.some((r) => r.at > stalled.at && (rangeOf(r)?.start ?? -1) > start),
      'the retry starts past the bytes that arrived before the stall',
    );
  });

  it('retries a byte range answered 503, honouring Retry-After', async () => {
    origin.addFault({ match: laterPiece, status: 503, retryAfter: 1, times: 2 });
    const started = Date.now();
    sameBytes(await download(`${origin.url}/large.mp4`), large);
    assert.ok(Date.now() - started >= 1000, 'waited for Retry-After');
    assert.equal(origin.requests.filter((r) => r.status === 503).length, 2);
  });

  it('starts over when the ETag changes mid-download, and ends byte-identical', async () => {
    const data = readFileSync(large.file);
    let served = 0;
    origin.route('/changing.mp4', (_req, _res, ctx) =>
      ctx.send(data, { contentType: 'video/mp4', headers: { ETag: ++served === 1 ? '"v1"' : '"v2"' } }),
    );
    sameBytes(await download(`${origin.url}/changing.mp4`), large);
    const gets = origin.requests.filter((r) => r.path === '/changing.mp4');
    const fromZero = gets.filter((r) => r.headers['range'] === 'bytes=0-');
    assert.equal(fromZero.length, 2, 'one fresh start after the change');
    assert.ok(gets.indexOf(fromZero[1]!) > 1, 'after a piece saw the new ETag');
  });

  it('starts over when the file is replaced by one of another size, and ends as the new file', async () => {
    let served = 0;
    origin.route('/replaced.mp4', (_req, _res, ctx) => ctx.sendFile(++served === 1 ? large.file : big.file));
    sameBytes(await download(`${origin.url}/replaced.mp4`), big);
    const fromZero = origin.requests.filter(
      (r) => r.path === '/replaced.mp4' && r.headers['range'] === 'bytes=0-',
    );
    assert.equal(fromZero.length, 2);
  });

  it('resumes from the checkpoint beside the part file, fetching only the missing ranges', async () => {
    const dir = tempDir('gabe-mp4-resume-');
    const config = loadConfig({
      file: path.join(dir, 'config.json'),
      env: {},
      overrides: {
        allow_private_networks: true,
        temp_path: path.join(dir, 'temp'),
        output_path: path.join(dir, 'out'),
        chunk_size: 64 * 1024,
        connection_timeout: 2,
      },
    });
    const id = randomUUID();
    const work = path.join(config.temp_path, id);
    mkdirSync(work, { recursive: true });
    const url = `${origin.url}/large.mp4`;
    const run = async (signal: AbortSignal): Promise<JobResult> => {
      const now = new Date().toISOString();
      const job: Job = {
        ...{ id, seq: 1, type: 'mp4', status: 'PROCESSING', client_ip: 'test', owner: null },
        ...{ request: { url }, video_name: 'resumed', created_at: now, started_at: now, completed_at: null },
        ...{ updated_at: now, result: null, error: null, error_code: null, attempts: 1, progress: 0 },
        ...{ total_segments: 0, downloaded_segments: 0, downloaded_bytes: 0, total_bytes: null },
        ...{ speed_bps: 0, eta_seconds: null, recorded_seconds: null },
      };
      return mp4Downloader.run({
        job,
        config,
        ffmpeg: await testFfmpeg(),
        log: createLogger({ stdout: false }),
        signal,
        tempDir: work,
        progress: new ProgressTracker(),
        reportProgress: () => {},
      });
    };
    const checkpointFile = path.join(work, 'download.part.json');
    const saved = () => readSavedRanges(checkpointFile);

    origin.addFault({ match: '/large.mp4', throttleBytesPerSec: 500_000 });
    const stop = new AbortController();
    const first = run(stop.signal);
    while (savedBytes(saved()) < 2_000_000) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await assert.rejects(first, { code: 'GABE_ERR_CANCELLED' });
    const cp = saved()!;
    assert.equal(cp.size, large.size);
    const missing = cp.pieces.filter(([s, e, d]) => s + d < e).map(([s, e, d]) => [s + d, e - 1] as const);
    // The part file holds the bytes the checkpoint claims.
    const part = readFileSync(path.join(work, 'download.part'));
    const source = readFileSync(large.file);
    for (const [s, , d] of cp.pieces) assert.ok(part.subarray(s, s + d).equals(source.subarray(s, s + d)));

    origin.reset();
    const result = await run(new AbortController().signal);
    assert.equal(mediaIdentity(result.output_path), mediaIdentity(source), 'the same media and tables');
    const gets = origin.requests.filter((r) => r.path === '/large.mp4').map((r) => rangeOf(r)!);
    const inMissing = (r: { start: number; end: number | null }) =>
      missing.some(([s, e]) => r.start >= s && r.end !== null && r.end <= e);
    assert.ok(
      gets.every(inMissing),
      `requests ${JSON.stringify(gets)} vs missing ${JSON.stringify(missing)}`,
    );
    for (const [s, e] of missing) {
      // Every missing byte was asked for: the requests inside this range leave no gap.
      const inside = gets.filter((r) => r.start >= s && r.end! <= e).sort((a, b) => a.start - b.start);
      let next = s;
      for (const r of inside) if (r.start <= next) next = Math.max(next, r.end! + 1);
      assert.equal(next, e + 1, `bytes ${s}-${e} fully requested`);
    }
    assert.ok(!existsSync(checkpointFile), 'the checkpoint goes with the finished part file');
  });

  it('starts over when the server ignores Range on the retry', async () => {
    origin.addFault({ match: '/big.mp4', truncate: { fraction: 0.3 }, times: 1 });
    origin.addFault({ match: '/big.mp4', ignoreRange: true });
    sameBytes(await download(`${origin.url}/big.mp4`), big);
  });

  it('detects a stalled body with the read timeout and retries', async () => {
    origin.addFault({ match: '/small.mp4', stall: { ms: 5000, afterFraction: 0.2 }, times: 1 });
    const started = Date.now();
    sameBytes(await download(`${origin.url}/small.mp4`), small);
    assert.ok(Date.now() - started < 5000, 'did not wait for the stall to end');
  });

  it('fails at once on 404, naming the status, without retrying', async () => {
    const job = await download(`${origin.url}/missing.mp4`);
    assert.equal(job.status, 'FAILED');
    assert.match(job.error ?? '', /HTTP 404/);
    assert.equal(job.error_code, 'GABE_ERR_HTTP_STATUS');
    assert.equal(origin.countRequests('/missing.mp4'), 1);
  });

  it('fails after max_retries when the origin keeps failing', async () => {
    origin.addFault({ match: '/small.mp4', status: 502 });
    const job = await download(`${origin.url}/small.mp4`);
    assert.equal(job.status, 'FAILED');
    assert.match(job.error ?? '', /HTTP 502/);
    assert.equal(origin.countRequests('/small.mp4'), 4, 'one try and three retries');
  });

  it('fails with a clear error when the URL serves an HTML page or garbage', async () => {
    origin.addFault({ match: '/small.mp4', html: true });
    const html = await download(`${origin.url}/small.mp4`);
    assert.equal(html.status, 'FAILED');
    assert.equal(html.error_code, 'GABE_ERR_NOT_A_VIDEO');
    assert.match(html.error ?? '', /HTML/);
    origin.reset();
    origin.route('/garbage.mp4', { body: Buffer.alloc(50_000, 7), contentType: 'video/mp4' });
    const garbage = await download(`${origin.url}/garbage.mp4`);
    assert.equal(garbage.status, 'FAILED');
    assert.equal(garbage.error_code, 'GABE_ERR_NOT_A_VIDEO');
    assert.deepEqual(readdirSync(svc.config.temp_path), [], 'temp files removed after failure');
  });

  it('remuxes a non-MP4 container served at an MP4 URL into a real MP4', async () => {
    const ts = await makeHlsTs({ seconds: 2 });
    origin.addFile('/actually-ts.mp4', path.join(path.dirname(ts.playlist), ts.segments[0]!));
    const job = await download(`${origin.url}/actually-ts.mp4`);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const probe = await ffprobeJson(job.result!.output_path);
    assert.match(probe.format.format_name, /mp4/);
  });

  it('never overwrites: the same name gets a numbered suffix', async () => {
    const a = await download(`${origin.url}/small.mp4`, { video_name: 'same' });
    const b = await download(`${origin.url}/small.mp4`, { video_name: 'same' });
    assert.equal(path.basename(a.result!.output_path), 'same.mp4');
    assert.equal(path.basename(b.result!.output_path), 'same (1).mp4');
    assert.equal(b.result!.video_name, 'same (1)');
  });

  it('keeps a traversal name inside output_path', async () => {
    const job = await download(`${origin.url}/small.mp4`, { video_name: '../../../../tmp/evil\u0000name' });
    assert.equal(job.status, 'COMPLETED');
    assert.equal(path.dirname(job.result!.output_path), svc.config.output_path);
  });

  it('goes through the proxy named in the request', async () => {
    const proxy = await startProxy();
    try {
      sameBytes(await download(`${origin.url}/small.mp4`, { proxy: proxy.url }), small);
      assert.deepEqual(proxy.targets, [`127.0.0.1:${origin.port}`]);
    } finally {
      await proxy.close();
    }
  });

  it('sends every connection of a parallel download through the proxy', async () => {
    const proxy = await startProxy();
    try {
      origin.addFault({ match: '/large.mp4', throttleBytesPerSec: 4_000_000 });
      sameBytes(await download(`${origin.url}/large.mp4`, { proxy: proxy.url }), large);
      assert.ok(proxy.targets.length >= 4, `${proxy.targets.length} tunnels`);
      assert.ok(proxy.targets.every((t) => t === `127.0.0.1:${origin.port}`));
    } finally {
      await proxy.close();
    }
  });

  it('reports bytes, speed and ETA while running', async () => {
    // Two connections, no more: slow enough (about 1.6 s) to be watched while it runs.
    const svc = await startTestService({ chunk_size: 64 * 1024, mp4_connections: 2, mp4_connections_max: 2 });
    origin.addFault({ match: '/big.mp4', throttleBytesPerSec: 800_000 });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/big.mp4` }),
      remoteAddress: '10.2.0.1',
    });
    const id = res.json().job_id;
    await svc.waitFor(id, (j) => j.downloaded_bytes > 0);
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      const live = (await svc.app.inject({ method: 'GET', url: `/job/${id}` })).json();
      if (
        live.status === 'PROCESSING' &&
        live.speed_bps > 0 &&
        live.eta_seconds !== null &&
        live.progress > 0
      ) {
        assert.equal(live.total_bytes, big.size);
        assert.ok(live.downloaded_bytes < big.size);
        seen = true;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(seen, 'saw live progress with speed and ETA');
    sameBytes(await svc.waitFor(id, ['COMPLETED', 'FAILED']), big);
  });

  it('cancels a running download: every connection stops within a second and partial files go', async () => {
    origin.addFault({ match: '/large.mp4', throttleBytesPerSec: 100_000 });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/large.mp4`, video_name: 'cancelled' }),
      remoteAddress: '10.3.0.1',
    });
    const id = res.json().job_id;
    await svc.waitFor(id, (j) => j.status === 'PROCESSING');
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(existsSync(path.join(svc.config.temp_path, id)), 'partial files exist while running');
    const started = Date.now();
    const del = await svc.app.inject({ method: 'DELETE', url: `/job/${id}` });
    assert.ok(Date.now() - started < 1000, `cancel took ${Date.now() - started} ms`);
    assert.equal(del.statusCode, 200);
    assert.equal(del.json().status, 'CANCELLED');
    assert.ok(!existsSync(path.join(svc.config.temp_path, id)), 'partial files removed');
    assert.ok(!existsSync(path.join(svc.config.output_path, 'cancelled.mp4')));
    const cancelled = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    const req = origin.requests.filter((r) => r.path === '/large.mp4');
    assert.ok(req.length > 1, 'several connections were open');
    assert.ok(
      req.every((r) => r.at < started),
      'no new request after cancel',
    );
    assert.ok(
      req.every((r) => !r.completed && r.endedAt > 0 && r.endedAt - cancelled < 1000),
      'the origin saw every transfer aborted',
    );
    assert.equal(svc.store.get(id)?.status, 'CANCELLED');
  });
});

describe('MP4 range planning (pure)', () => {
  const MiB = 1024 * 1024;

  it('opens one connection per MiB up to the limit, so a file under 2 MiB is one request', () => {
    assert.equal(connectionsFor(2 * MiB - 1, 16), 1);
    assert.equal(connectionsFor(5 * MiB, 16), 5);
    assert.equal(connectionsFor(240 * MiB, 16), 16);
    assert.equal(connectionsFor(240 * MiB, 1), 1);
    const plan = RangePlan.fresh(240 * MiB + 7, 16);
    assert.equal(plan.pieces.length, 16);
    assert.equal(plan.pieces[0]!.start, 0);
    assert.equal(plan.pieces.at(-1)!.end, 240 * MiB + 7);
    for (let i = 1; i < 16; i++) assert.equal(plan.pieces[i]!.start, plan.pieces[i - 1]!.end);
    const sizes = plan.pieces.map((p) => p.end - p.start);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, 'equal pieces');
  });

  it('gives an idle connection the upper half of a running piece, which then ends where it starts', () => {
    const t = { requestMs: 30, meanRateBps: null };
    const plan = RangePlan.fresh(40 * MiB, 2);
    const [a, b] = [plan.take(t)!, plan.take(t)!];
    a.received = a.written = a.end;
    plan.release(a);
    b.received = 24 * MiB; // 16 MiB left at 10 MiB/s: 1.6 s
    b.written = 23 * MiB; // one chunk still waits for its write: the split goes by what was received
    b.rateBps = 10 * MiB;
    const stolen = plan.take(t)!;
    assert.deepEqual([stolen.start, stolen.end, stolen.owned], [32 * MiB, 40 * MiB, true]);
    assert.equal(b.end, 32 * MiB);
    assert.deepEqual(
      plan.pieces.map((p) => [p.start, p.end]),
      [
        [0, 20 * MiB],
        [20 * MiB, 32 * MiB],
        [32 * MiB, 40 * MiB],
      ],
    );
  });

  it('splits the piece with the longest time left, not the biggest, and leaves one about to end alone', () => {
    const t = { requestMs: 30, meanRateBps: null };
    const plan = RangePlan.fresh(64 * MiB, 4);
    const [p0, p1, p2, p3] = [plan.take(t)!, plan.take(t)!, plan.take(t)!, plan.take(t)!];
    p0.received = p0.written = p0.end;
    plan.release(p0);
    p1.received = p1.written = p1.end - 4 * MiB; // 4 MiB at 1 MiB/s: 4 s left
    p1.rateBps = MiB;
    p2.received = p2.written = p2.start; // 16 MiB at 20 MiB/s: 0.8 s left
    p2.rateBps = 20 * MiB;
    p3.received = p3.written = p3.end - 600 * 1024; // 600 KiB at 10 MiB/s: 59 ms < 3 × 30 ms
    p3.rateBps = 10 * MiB;
    const stolen = plan.take(t)!;
    assert.equal(stolen.end, 32 * MiB, 'the slow piece was split');
    for (const p of [p1, p2, stolen]) p.received = p.written = p.end;
    assert.equal(plan.take(t), null, 'p3 ends sooner than a new request would start');
    p3.rateBps = 0; // waiting to retry: its time left is unbounded
    assert.ok(plan.take(t), 'a piece waiting to retry is split');
  });

  it('trusts only a checkpoint that covers the file exactly with bytes inside their pieces', () => {
    const plan = RangePlan.fresh(10 * MiB, 3);
    plan.pieces[1]!.written = plan.pieces[1]!.start + 12345;
    const id = { size: 10 * MiB, etag: '"x"', lastModified: null };
    const cp = parseCheckpoint(JSON.stringify(checkpointOf(id, plan)))!;
    assert.ok(cp);
    assert.equal(RangePlan.fromCheckpoint(cp).writtenBytes, 12345);
    const bad = (pieces: unknown, size = 10 * MiB) =>
      parseCheckpoint(JSON.stringify({ version: 1, size, etag: null, lastModified: null, pieces }));
    assert.equal(bad([[0, 5 * MiB, 0]]), null, 'a gap at the end');
    assert.equal(
      bad([
        [0, 5 * MiB, 0],
        [5 * MiB + 1, 10 * MiB, 0],
      ]),
      null,
      'a hole',
    );
    assert.equal(bad([[0, 10 * MiB, 10 * MiB + 1]]), null, 'more done than the piece holds');
    assert.equal(bad([[0, 10 * MiB, -1]]), null);
    assert.equal(parseCheckpoint('{"version":1'), null, 'torn JSON');
    assert.ok(bad([[0, 10 * MiB, MIN_PIECE_BYTES]]));
  });

  it('sees a change in size or in a validator both answers carry, and nothing else', () => {
    const a = { size: 100, etag: '"1"', lastModified: 'Mon, 01 Jan 2026 00:00:00 GMT' };
    assert.equal(describeChange(a, { ...a }), null);
    assert.equal(describeChange(a, { ...a, etag: null, lastModified: null }), null);
    assert.match(describeChange(a, { ...a, size: 101 })!, /size/);
    assert.match(describeChange(a, { ...a, etag: '"2"' })!, /ETag/);
    assert.match(
      describeChange(a, { ...a, etag: null, lastModified: 'Tue, 02 Jan 2026 00:00:00 GMT' })!,
      /Last-Modified/,
    );
  });
});
