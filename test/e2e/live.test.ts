/**
 * Live recording end to end: a local origin publishes a VOD fixture's segments in real time as a live
 * playlist with a sliding window (a media sequence that moves, as an encoder's does), and Gabe must
 * record every segment once, in order, into the same video the VOD playlist gives.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import {
  liveTarget,
  MAX_TARGET_S,
  MIN_RELOAD_MS,
  reloadDelayMs,
} from '../../src/pipeline/hls/live-recording.js';
import type { MediaPlaylist } from '../../src/playlist/model.js';
import {
  decodedVideoHash,
  durationOf,
  type HlsMediaFixture,
  makeHlsTs,
  makeTempDir,
  runFfmpeg,
} from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

interface LiveOptions {
  /** Segments listed at once (a sliding window); the oldest leave as new ones come. */
  window: number;
  /** Segments already published when the first request arrives. */
  initial?: number;
  /** Never publish EXT-X-ENDLIST (an encoder that dies without saying so). */
  neverEnd?: boolean;
}

/**
 * Serves `fixture` at `pathname` as a live stream that starts on the first request: a segment is
 * published once its end time has passed, the playlist lists the last `window` of them, and
 * EXT-X-ENDLIST comes with the last one. The segments themselves are served from the fixture's folder.
 */
function serveLive(origin: Origin, pathname: string, fixture: HlsMediaFixture, o: LiveOptions) {
  const dir = path.posix.dirname(pathname);
  origin.serveDir(`${dir}/`, fixture.dir);
  const ends: number[] = [];
  let t = 0;
  for (const d of fixture.segmentDurations) {
    t += d;
    ends.push(t);
  }
  let startedAt: number | null = null;
  const listed = new Set<number>();
  origin.route(pathname, (_req, _res, ctx) => {
    startedAt ??= Date.now();
    const elapsed = (Date.now() - startedAt) / 1000;
    const published = Math.max(o.initial ?? 1, ends.filter((e) => e <= elapsed).length);
    const count = Math.min(published, fixture.segmentCount);
    const first = Math.max(0, count - o.window);
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:3',
      `#EXT-X-TARGETDURATION:${fixture.targetDuration}`,
      `#EXT-X-MEDIA-SEQUENCE:${first}`,
    ];
    for (let i = first; i < count; i++) {
      listed.add(i);
      lines.push(`#EXTINF:${fixture.segmentDurations[i]!.toFixed(6)},`, fixture.segments[i]!);
    }
    if (count === fixture.segmentCount && !o.neverEnd) lines.push('#EXT-X-ENDLIST');
    return ctx.send(`${lines.join('\n')}\n`, { contentType: 'application/vnd.apple.mpegurl' });
  });
  return { listed };
}

/** What `ffmpeg -i VOD -c copy` makes of the fixture: the recording must decode to the same video. */
async function vodReference(playlist: string): Promise<string> {
  const out = path.join(await makeTempDir('live-ref'), 'ref.mp4');
  await runFfmpeg(['-v', 'error', '-i', playlist, '-map', '0:v', '-map', '0:a?', '-c', 'copy', out]);
  return out;
}

describe('live reload pacing (pure)', () => {
  const media = (targetDuration: number | null, durations: (number | null)[] = []) => ({
    targetDuration,
    segments: durations.map((duration) => ({ duration })) as unknown as MediaPlaylist['segments'],
  });

  it('keeps a usable TARGETDURATION, within 1..30 s', () => {
    assert.equal(liveTarget(media(6)), 6);
    assert.equal(liveTarget(media(1)), 1);
    assert.equal(liveTarget(media(0.001)), 1);
    assert.equal(liveTarget(media(1e9)), MAX_TARGET_S);
    assert.equal(liveTarget(media(Number.POSITIVE_INFINITY, [2])), 2, 'not finite: as if missing');
  });

  it('replaces a missing, zero, negative or NaN TARGETDURATION by the longest segment rounded up, else 6 s', () => {
    for (const td of [null, 0, -5, Number.NaN, Number.NEGATIVE_INFINITY]) {
      assert.equal(liveTarget(media(td, [1.9, 3.2, null, 2])), 4, String(td));
      assert.equal(liveTarget(media(td)), 6, `${td} without segments`);
      assert.equal(liveTarget(media(td, [0.2])), 1, `${td} with tiny segments`);
      assert.equal(liveTarget(media(td, [5000])), MAX_TARGET_S, `${td} with a huge EXTINF`);
    }
  });

  it('waits a target after growth and half of one otherwise (RFC 8216 6.3.4), never under a second', () => {
    assert.equal(reloadDelayMs(6, true), 6000);
    assert.equal(reloadDelayMs(6, false), 3000);
    assert.equal(reloadDelayMs(1, false), MIN_RELOAD_MS);
    assert.equal(reloadDelayMs(1, true), 1000);
    assert.equal(reloadDelayMs(MAX_TARGET_S, true), 30_000);
  });
});

describe('live recording', () => {
  let origin: Origin;
  let svc: TestService;
  let ip = 0;

  before(async () => {
    origin = await startOrigin();
    svc = await startTestService({ max_jobs_per_ip: 0, max_retries: 2 });
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  async function submit(body: Record<string, unknown>): Promise<string> {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(body),
      remoteAddress: `10.7.0.${++ip}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return res.json().job_id;
  }

  const finished = (id: string, timeoutMs: number): Promise<Job> =>
    svc.waitFor(id, ['COMPLETED', 'FAILED', 'CANCELLED'], timeoutMs);

  it('records a 60 s live stream with a 3-segment window whole, identical to its VOD version', async () => {
    const vod = await makeHlsTs({ seconds: 60, segmentSeconds: 2 });
    const live = serveLive(origin, '/live60/index.m3u8', vod, { window: 3 });
    const id = await submit({ url: `${origin.url}/live60/index.m3u8`, video_name: 'live60' });
    const midway = await svc.waitFor(id, (j) => (j.recorded_seconds ?? 0) >= 10, 30_000);
    assert.equal(midway.status, 'PROCESSING');
    const job = await finished(id, 120_000);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.result!.live?.ended, 'endlist');
    assert.equal(job.result!.live?.missed_segments, 0);
    assert.equal(job.result!.segment_count, vod.segmentCount);
    assert.equal(live.listed.size, vod.segmentCount, 'the origin listed every segment at some point');
    // Every segment fetched exactly once, none twice.
    for (const seg of vod.segments) assert.equal(origin.countRequests(`/live60/${seg}`), 1, seg);
    assert.equal(
      await decodedVideoHash(job.result!.output_path),
      await decodedVideoHash(await vodReference(vod.playlist)),
    );
    assert.ok(Math.abs((await durationOf(job.result!.output_path)) - vod.duration) < 0.5);
    assert.ok(Math.abs(job.recorded_seconds! - vod.duration) < 0.01);
  });

  it('DELETE on a live recording stops it and keeps what was recorded: the job completes', async () => {
    const vod = await makeHlsTs({ seconds: 30, segmentSeconds: 1 });
    serveLive(origin, '/stop/index.m3u8', vod, { window: 4, initial: 2 });
    const id = await submit({ url: `${origin.url}/stop/index.m3u8`, video_name: 'stopped' });
    await svc.waitFor(id, (j) => (j.recorded_seconds ?? 0) >= 4, 20_000);
    const res = await svc.app.inject({ method: 'DELETE', url: `/job/${id}` });
    assert.equal(res.statusCode, 200);
    const job = res.json();
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.result.live.ended, 'stopped');
    const seconds = await durationOf(job.result.output_path);
    assert.ok(seconds >= 3 && seconds < 20, `${seconds} s recorded`);
    assert.ok(Math.abs(seconds - job.recorded_seconds) < 1.5, 'the file holds what was reported recorded');
  });

  it('stops at max_duration with at least that much recorded', async () => {
    const vod = await makeHlsTs({ seconds: 30, segmentSeconds: 1 });
    serveLive(origin, '/max/index.m3u8', vod, { window: 5, initial: 2 });
    const id = await submit({ url: `${origin.url}/max/index.m3u8`, max_duration: 4 });
    const job = await finished(id, 30_000);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.result!.live?.ended, 'max_duration');
    assert.equal(job.result!.segment_count, 4);
    const seconds = await durationOf(job.result!.output_path);
    assert.ok(seconds >= 3.5 && seconds < 5.5, `${seconds} s`);
  });

  it('skip_segments on a live stream: matching segments are never fetched, the recording has no hole', async () => {
    const vod = await makeHlsTs({ seconds: 12, segmentSeconds: 1 });
    // Segments 4 to 7 are listed under ads/ (the same media, served from there too): an ad break
    // longer than three target durations, which must not look like a stalled playlist.
    const ads = new Set([4, 5, 6, 7]);
    const listedAs = vod.segments.map((x, i) => (ads.has(i) ? `ads/${x}` : x));
    origin.serveDir('/liveads/ads/', vod.dir);
    serveLive(origin, '/liveads/index.m3u8', { ...vod, segments: listedAs }, { window: 4, initial: 2 });
    const id = await submit({ url: `${origin.url}/liveads/index.m3u8`, skip_segments: ['/ads/'] });
    const job = await finished(id, 60_000);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.result!.live?.ended, 'endlist');
    assert.equal(job.result!.live?.missed_segments, 0, 'skipped segments are not counted as missed');
    assert.deepEqual(job.result!.skipped, { segments: 4, seconds: 4 });
    assert.equal(origin.countRequests(/^\/liveads\/ads\//), 0);
    assert.equal(job.result!.segment_count, vod.segmentCount - 4);
    // The programme without the ad, as ffmpeg copies it from a VOD playlist that leaves it out.
    const kept = vod.segments.flatMap((x, i) =>
      ads.has(i)
        ? i === 4
          ? ['#EXT-X-DISCONTINUITY']
          : []
        : [`#EXTINF:${vod.segmentDurations[i]!.toFixed(6)},`, `/liveads/${x}`],
    );
    const list = [
      '#EXTM3U',
      '#EXT-X-TARGETDURATION:1',
      '#EXT-X-PLAYLIST-TYPE:VOD',
      ...kept,
      '#EXT-X-ENDLIST',
      '',
    ];
    origin.route('/liveads-ref/index.m3u8', { body: list.join('\n') });
    const ref = await vodReference(`${origin.url}/liveads-ref/index.m3u8`);
    assert.equal(await decodedVideoHash(job.result!.output_path), await decodedVideoHash(ref));
  });

  it('ends a recording whose playlist stops changing for three target durations, and says so', async () => {
    const vod = await makeHlsTs({ seconds: 4, segmentSeconds: 1 });
    serveLive(origin, '/dead/index.m3u8', vod, { window: 10, initial: 4, neverEnd: true });
    const started = Date.now();
    const id = await submit({ url: `${origin.url}/dead/index.m3u8` });
    const job = await finished(id, 30_000);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.result!.live?.ended, 'stalled');
    assert.equal(job.result!.segment_count, 4);
    assert.ok(Date.now() - started >= 3000, 'waited three target durations before giving up');
    const log = readFileSync(path.join(svc.config.log_path, 'video_downloader.log'), 'utf8');
    assert.match(log, /live recording ended/);
  });
});
