/**
 * A dynamic (live) MPD recorded like live HLS: a local origin serves a fixture's SegmentTemplate MPD
 * as `type="dynamic"` with an availabilityStartTime just before the first request, so segments become
 * available by the clock (ISO/IEC 23009-1 5.3.9.5.3), inside a sliding timeShiftBufferDepth window;
 * at the end the MPD turns static, as an encoder's does when the event ends.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { type DashFixture, dashSourceReference, makeDash } from '../helpers/dash-fixtures.js';
import { decodedHash, durationOf } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

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

interface LiveMpd {
  /** Seconds already available at the first request. */
  initial: number;
  /** Stay dynamic forever (an encoder that never ends the event). */
  neverEnd?: boolean;
}

/**
 * Serves `fx` (mode `number`: 1 s segments, $Number$) at `prefix`out.mpd as a live MPD that starts at
 * the first request; its Period lasts the fixture's length, and once that has passed the MPD is
 * static. MPD reads are counted.
 */
async function serveLive(prefix: string, fx: DashFixture, o: LiveMpd): Promise<{ reads: () => number }> {
  origin.serveDir(prefix, fx.dir);
  const text = await readFile(path.join(fx.dir, fx.mpdName), 'utf8');
  let startedAt: number | null = null;
  let reads = 0;
  origin.route(`${prefix}live.mpd`, (_req, _res, ctx) => {
    reads++;
    startedAt ??= Date.now() - o.initial * 1000;
    const over = !o.neverEnd && Date.now() - startedAt > (fx.seconds + 1) * 1000;
    const head = over
      ? `type="static" mediaPresentationDuration="PT${fx.seconds}S"`
      : `type="dynamic" availabilityStartTime="${new Date(startedAt).toISOString()}" ` +
        `publishTime="${new Date().toISOString()}" minimumUpdatePeriod="PT1S" timeShiftBufferDepth="PT3S"`;
    const body = text
      .replace(/type="static"\s+mediaPresentationDuration="[^"]*"/, head)
      .replace(/<Period id="0" start="PT0.0S">/, `<Period id="0" start="PT0S" duration="PT${fx.seconds}S">`);
    return ctx.send(body, { contentType: 'application/dash+xml' });
  });
  return { reads: () => reads };
}

/** The (t, d) of every S of a SegmentTimeline, repeats expanded. */
function expand(timeline: string): { t: number; d: number }[] {
  const out: { t: number; d: number }[] = [];
  let next = 0;
  for (const m of timeline.matchAll(/<S\s+([^>]*?)\/>/g)) {
    const get = (n: string) => {
      const v = new RegExp(`\\b${n}="(-?\\d+)"`).exec(m[1]!)?.[1];
      return v === undefined ? undefined : Number(v);
    };
    let t = get('t') ?? next;
    const d = get('d')!;
    for (let i = 0; i <= (get('r') ?? 0); i++, t += d) out.push({ t, d });
    next = t;
  }
  return out;
}

/**
 * Serves a `timeline` fixture at `prefix`live.mpd as a dynamic MPD whose SegmentTimelines list only the
 * last `window` segments published (a segment is published once its end has passed since the first
 * request) with startNumber moved along, as a packager's sliding window does; once every segment is
 * out, the original static MPD.
 */
async function serveLiveTimeline(prefix: string, fx: DashFixture, window: number): Promise<void> {
  origin.serveDir(prefix, fx.dir);
  const text = await readFile(path.join(fx.dir, fx.mpdName), 'utf8');
  let startedAt: number | null = null;
  origin.route(`${prefix}live.mpd`, (_req, _res, ctx) => {
    startedAt ??= Date.now() - 1000;
    const elapsed = (Date.now() - startedAt) / 1000;
    let done = true;
    const body = text.replace(
      /<SegmentTemplate timescale="(\d+)"([^>]*?)startNumber="1">\s*<SegmentTimeline>([\s\S]*?)<\/SegmentTimeline>/g,
      (_all, timescale: string, attrs: string, timeline: string) => {
        const all = expand(timeline);
        const published = all.filter((s) => (s.t + s.d) / Number(timescale) <= elapsed).length;
        if (published < all.length) done = false;
        const first = Math.max(0, published - window);
        const list = all.slice(first, Math.max(published, 1)).map((s) => `<S t="${s.t}" d="${s.d}"/>`);
        return `<SegmentTemplate timescale="${timescale}"${attrs}startNumber="${first + 1}"><SegmentTimeline>${list.join('')}</SegmentTimeline>`;
      },
    );
    if (done) return ctx.send(text, { contentType: 'application/dash+xml' });
    const live = body.replace(
      /type="static"\s+mediaPresentationDuration="[^"]*"/,
      'type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" minimumUpdatePeriod="PT1S"',
    );
    return ctx.send(live, { contentType: 'application/dash+xml' });
  });
}

async function submit(body: Record<string, unknown>): Promise<string> {
  const res = await svc.app.inject({
    method: 'POST',
    url: '/download/',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
    remoteAddress: `10.8.0.${++ip}`,
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json().job_id;
}

const finished = (id: string, timeoutMs: number): Promise<Job> =>
  svc.waitFor(id, ['COMPLETED', 'FAILED', 'CANCELLED'], timeoutMs);

describe('a dynamic MPD is recorded like a live playlist', () => {
  it('records every segment once until the MPD turns static: the frames and samples of the static MPD', async () => {
    const fx = await makeDash({ mode: 'number', seconds: 8 });
    const live = await serveLive('/live8/', fx, { initial: 2 });
    const id = await submit({ url: `${origin.url}/live8/live.mpd`, video_name: 'dash-live' });
    const midway = await svc.waitFor(id, (j) => (j.recorded_seconds ?? 0) >= 3, 20_000);
    assert.equal(midway.status, 'PROCESSING', 'still recording after 3 s of an 8 s event');
    const job = await finished(id, 60_000);
    assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
    const result = job.result!;
    assert.equal(result.source_format, 'dash');
    assert.equal(result.live?.ended, 'endlist');
    assert.equal(result.live?.missed_segments, 0);
    assert.equal(result.segment_count, 8);
    for (let n = 1; n <= 8; n++) {
      const name = `chunk-stream0-${String(n).padStart(5, '0')}.m4s`;
      assert.equal(origin.countRequests(`/live8/${name}`), 1, name);
    }
    assert.ok(live.reads() >= 4, `the MPD was reloaded (${live.reads()} reads)`);
    const ref = await dashSourceReference(fx);
    assert.equal(
      await decodedHash(result.output_path, 'v'),
      await decodedHash(ref.video, 'v'),
      'decoded frames',
    );
    assert.equal(
      await decodedHash(result.output_path, 'a'),
      await decodedHash(ref.audio, 'a'),
      'decoded samples',
    );
    assert.ok(Math.abs((await durationOf(result.output_path)) - 8) < 0.2);
  });

  it('a SegmentTimeline window that slides ($Number$ moving on) is recorded whole, each segment once', async () => {
    const fx = await makeDash({ mode: 'timeline', seconds: 6 });
    await serveLiveTimeline('/live-tl/', fx, 3);
    const id = await submit({ url: `${origin.url}/live-tl/live.mpd`, video_name: 'dash-live-timeline' });
    const job = await finished(id, 60_000);
    assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
    assert.equal(job.result!.live?.ended, 'endlist');
    assert.equal(job.result!.live?.missed_segments, 0);
    for (const files of [fx.video[0]!, fx.audio[0]!]) {
      for (const f of files.slice(1)) assert.equal(origin.countRequests(`/live-tl/${f}`), 1, f);
    }
    const ref = await dashSourceReference(fx);
    assert.equal(
      await decodedHash(job.result!.output_path, 'v'),
      await decodedHash(ref.video, 'v'),
      'decoded frames',
    );
    assert.equal(
      await decodedHash(job.result!.output_path, 'a'),
      await decodedHash(ref.audio, 'a'),
      'decoded samples',
    );
  });

  it('max_duration ends the recording of an MPD that stays dynamic', async () => {
    const fx = await makeDash({ mode: 'number', seconds: 8 });
    await serveLive('/live-max/', fx, { initial: 1, neverEnd: true });
    const id = await submit({ url: `${origin.url}/live-max/live.mpd`, max_duration: 3 });
    const job = await finished(id, 30_000);
    assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
    assert.equal(job.result!.live?.ended, 'max_duration');
    assert.equal(job.result!.segment_count, 3);
    assert.ok(Math.abs((await durationOf(job.result!.output_path)) - 3) < 0.2);
  });
});
