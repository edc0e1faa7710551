import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { hlsDownloader } from '../../src/pipeline/hls/job.js';
import { ffmpegCopy } from '../helpers/differential.js';
import {
  decodedHash,
  decodedVideoHash,
  durationOf,
  ffprobeJson,
  type HlsAesFixture,
  type HlsMasterFixture,
  type HlsSeparateAudioFixture,
  makeHlsAes,
  makeHlsByteRange,
  makeHlsDiscontinuity,
  makeHlsFmp4,
  makeHlsMaster,
  makeHlsSeparateAudio,
  makeHlsTs,
  makeTempDir,
} from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { startProxy } from '../helpers/proxy.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { startSocks5 } from '../helpers/socks.js';

/** What `ffmpeg -i URL -c copy` makes of the same playlist: the reference a download must equal. */
async function reference(url: string): Promise<string> {
  return ffmpegCopy(url, path.join(await makeTempDir('ref'), 'ref.mp4'), ['-allowed_extensions', 'ALL']);
}

/** The types of an MP4's top-level boxes, in file order. */
function topLevelBoxes(file: string): string[] {
  const data = readFileSync(file);
  const types: string[] = [];
  for (let at = 0; at + 8 <= data.length; ) {
    let size = data.readUInt32BE(at);
    types.push(data.toString('latin1', at + 4, at + 8));
    if (size === 1) size = Number(data.readBigUInt64BE(at + 8));
    if (size < 8) break;
    at += size;
  }
  return types;
}

describe('HLS downloads end to end', () => {
  let origin: Origin;
  let svc: TestService;
  let master: HlsMasterFixture;
  let aes: HlsAesFixture;
  let sep: HlsSeparateAudioFixture;
  let ip = 0;

  before(async () => {
    origin = await startOrigin();
    master = await makeHlsMaster();
    aes = await makeHlsAes({ iv: 'implicit', rotateEvery: 2 });
    sep = await makeHlsSeparateAudio();
    origin.serveDir('/master/', master.dir);
    origin.serveDir('/aes/', aes.dir);
    origin.serveDir('/sep/', sep.dir);
    svc = await startTestService({ max_jobs_per_ip: 0, max_retries: 2 });
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  async function download(body: Record<string, unknown>, timeoutMs?: number): Promise<Job> {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(body),
      remoteAddress: `10.4.0.${++ip % 250}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED'], timeoutMs);
  }

  async function assertSameVideo(job: Job, url: string): Promise<void> {
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(
      await decodedVideoHash(job.result!.output_path),
      await decodedVideoHash(await reference(url)),
    );
  }

  it('downloads a master playlist at the highest bandwidth by default, equal to ffmpeg -c copy', async () => {
    const job = await download({ url: `${origin.url}/master/${master.masterName}`, video_name: 'best' });
    const top = master.variants.at(-1)!;
    await assertSameVideo(job, `${origin.url}/master/${top.uri}`);
    assert.equal(job.result!.resolution, top.resolution);
    assert.equal(job.result!.segment_count, top.segmentCount);
    assert.equal(job.total_segments, top.segmentCount);
    assert.equal(job.downloaded_segments, top.segmentCount);
    assert.equal(job.progress, 100);
    const streams = (await ffprobeJson(job.result!.output_path)).streams.map((s) => s.codec_type).sort();
    assert.deepEqual(streams, ['audio', 'video']);
    assert.ok(Math.abs(job.result!.duration_seconds! - top.duration) < 0.5);
    assert.deepEqual(readdirSync(svc.config.temp_path), [], 'temp files removed after success');
  });

  it('picks the requested resolution, else the closest below, else the closest above', async () => {
    const [low, mid] = master.variants;
    const url = `${origin.url}/master/${master.masterName}`;
    const exact = await download({ url, resolution: mid!.resolution });
    assert.equal(exact.result!.resolution, mid!.resolution);
    await assertSameVideo(exact, `${origin.url}/master/${mid!.uri}`);
    assert.equal((await download({ url, resolution: '800x450' })).result!.resolution, mid!.resolution);
    assert.equal((await download({ url, resolution: '100x100' })).result!.resolution, low!.resolution);
    assert.equal((await download({ url, resolution: '360p' })).result!.resolution, mid!.resolution);
    assert.equal((await download({ url, resolution: 'worst' })).result!.resolution, low!.resolution);
  });

  it('uses default_resolution from config when the request names none', async () => {
    const other = await startTestService({ max_jobs_per_ip: 0, default_resolution: '640x360' });
    const res = await other.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/master/${master.masterName}` }),
    });
    const job = await other.waitFor(res.json().job_id, ['COMPLETED', 'FAILED']);
    assert.equal(job.result?.resolution, '640x360', job.error ?? '');
    await other.close();
  });

  it('decrypts AES-128 with rotating keys and IVs from the media sequence, fetching each key once', async () => {
    const url = `${origin.url}/aes/${aes.playlistName}`;
    const job = await download({ url });
    assert.ok(aes.keys.length >= 2);
    for (const k of aes.keys) assert.equal(origin.countRequests(`/aes/${k.uri}`), 1, k.uri);
    await assertSameVideo(job, url);
  });

  it('fails with GABE_ERR_KEY naming the status when a key cannot be fetched', async () => {
    origin.addFault({ match: /\.key$/, status: 403 });
    const job = await download({ url: `${origin.url}/aes/${aes.playlistName}` });
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_KEY');
    assert.match(job.error ?? '', /HTTP 403/);
  });

  it('downloads fMP4 (EXT-X-MAP) and single-file byte-range playlists, coalescing adjacent ranges', async () => {
    const fmp4 = await makeHlsFmp4();
    origin.serveDir('/fmp4/', fmp4.dir);
    const fUrl = `${origin.url}/fmp4/${fmp4.playlistName}`;
    await assertSameVideo(await download({ url: fUrl }), fUrl);

    const br = await makeHlsByteRange();
    origin.serveDir('/br/', br.dir);
    const bUrl = `${origin.url}/br/${br.playlistName}`;
    const job = await download({ url: bUrl });
    const mediaRequests = origin.requests.filter((r) => r.path === `/br/${br.mediaFile}`);
    assert.equal(mediaRequests.length, 1, `one request for ${br.segmentCount} adjacent ranges`);
    assert.match(String(mediaRequests[0]!.headers['range']), /^bytes=\d+-\d+$/);
    await assertSameVideo(job, bUrl);
  });

  it('cuts byte ranges out of the whole file when the origin ignores Range', async () => {
    const br = await makeHlsByteRange();
    origin.serveDir('/br2/', br.dir);
    origin.setOptions({ ranges: false });
    const url = `${origin.url}/br2/${br.playlistName}`;
    origin.setOptions({ ranges: true });
    const ref = await reference(url);
    origin.setOptions({ ranges: false });
    const job = await download({ url });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(await decodedVideoHash(job.result!.output_path), await decodedVideoHash(ref));
  });

  it('muxes the DEFAULT separate audio rendition with the video', async () => {
    const job = await download({ url: `${origin.url}/sep/${sep.masterName}` });
    await assertSameVideo(job, `${origin.url}/sep/${sep.video.uri}`);
    const en = sep.audio.find((a) => a.default)!;
    const fr = sep.audio.find((a) => !a.default)!;
    const out = await ffprobeJson(job.result!.output_path);
    assert.deepEqual(out.streams.map((s) => s.codec_type).sort(), ['audio', 'video']);
    const audioRef = await reference(`${origin.url}/sep/${en.uri}`);
    assert.equal(await decodedHash(job.result!.output_path, 'a'), await decodedHash(audioRef, 'a'));
    assert.equal(
      origin.countRequests(new RegExp(`^/sep/${path.dirname(fr.uri)}/`)),
      0,
      'other languages not fetched',
    );
  });

  it('writes the moov in front of the media in one pass, into space reserved for it', async () => {
    const job = await download({ url: `${origin.url}/master/${master.masterName}` });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    // ftyp, the reservation's leftover (free), moov, then mdat: playable before it has fully loaded,
    // without the rewrite of the whole file that +faststart does.
    const boxes = topLevelBoxes(job.result!.output_path);
    assert.deepEqual(boxes.slice(0, 3), ['ftyp', 'moov', 'free'], boxes.join());
    assert.equal(boxes.at(-1), 'mdat');
  });

  /** The separate-audio stream through a service whose moov reservation (64 bytes) is too small. */
  async function withTinyMoovReserve(config: Record<string, unknown>) {
    const tiny = await startTestService(
      { max_jobs_per_ip: 0, ...config },
      { downloaders: { hls: { run: (ctx) => hlsDownloader.run(ctx, { moovReserve: () => 64 }) } } },
    );
    const res = await tiny.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/sep/${sep.masterName}` }),
    });
    const job = await tiny.waitFor(res.json().job_id, ['COMPLETED', 'FAILED']);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    await assertSameVideo(job, `${origin.url}/sep/${sep.video.uri}`);
    const en = sep.audio.find((a) => a.default)!;
    const audioRef = await reference(`${origin.url}/sep/${en.uri}`);
    assert.equal(await decodedHash(job.result!.output_path, 'a'), await decodedHash(audioRef, 'a'));
    return { job, log: readFileSync(path.join(tiny.config.log_path, 'video_downloader.log'), 'utf8') };
  }

  it('merges again from the track files when the reserved moov space turns out too small (ffmpeg remux)', async () => {
    const { job, log } = await withTinyMoovReserve({ native_remux: false });
    assert.deepEqual(topLevelBoxes(job.result!.output_path).slice(0, 2), ['ftyp', 'moov']);
    assert.ok(log.includes('the reserved moov space was too small'));
  });

  it('puts the moov in front of a copy when the reserved space turns out too small (in-process remux)', async () => {
    const { job } = await withTinyMoovReserve({});
    assert.deepEqual(topLevelBoxes(job.result!.output_path), ['ftyp', 'moov', 'mdat']);
  });

  it('keeps a video-only stream video-only', async () => {
    const job = await download({ url: `${origin.url}/sep/${sep.video.uri}` });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const types = (await ffprobeJson(job.result!.output_path)).streams.map((s) => s.codec_type);
    assert.deepEqual(types, ['video']);
  });

  it('merges a stream with a discontinuity into one MP4 with every frame', async () => {
    const disc = await makeHlsDiscontinuity();
    origin.serveDir('/disc/', disc.dir);
    const url = `${origin.url}/disc/${disc.playlistName}`;
    const job = await download({ url });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.ok(Math.abs((await durationOf(job.result!.output_path)) - disc.duration) < 1);
    assert.equal(job.result!.segment_count, disc.segmentCount);
  });

  it('fetches one segment at a time without multithreading and several at once with it', async () => {
    const ts = await makeHlsTs({ seconds: 12, segmentSeconds: 1 });
    origin.serveDir('/conc/', ts.dir);
    const url = `${origin.url}/conc/${ts.playlistName}`;
    const peak = async (body: Record<string, unknown>) => {
      origin.reset();
      origin.addFault({ match: /\.ts$/, latencyMs: 60 });
      const job = await download({ url, ...body });
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      const segs = origin.requests.filter((r) => r.path.endsWith('.ts')).sort((a, b) => a.at - b.at);
      let max = 0;
      for (const r of segs) max = Math.max(max, segs.filter((o) => o.at <= r.at && o.at + 60 > r.at).length);
      return max;
    };
    assert.equal(await peak({ use_multithreading: false }), 1);
    assert.ok((await peak({ use_multithreading: true })) > 4);
  });

  it('retries failing and truncated segments and still produces the same video', async () => {
    const url = `${origin.url}/master/${master.variants[0]!.uri}`;
    origin.addFault({ match: /seg_001\.ts$/, status: 503, times: 1 });
    origin.addFault({ match: /seg_002\.ts$/, truncate: { fraction: 0.5 }, times: 1 });
    origin.addFault({ match: /seg_000\.ts$/, reset: 'before-headers', times: 1 });
    await assertSameVideo(await download({ url }), url);
  });

  it('fails with GABE_ERR_SEGMENT naming the segment when it still fails after retries', async () => {
    origin.addFault({ match: /seg_001\.ts$/, status: 404 });
    const job = await download({ url: `${origin.url}/master/${master.variants[0]!.uri}` });
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_SEGMENT');
    assert.match(job.error ?? '', /segment 1 .*HTTP 404/);
    assert.deepEqual(readdirSync(svc.config.temp_path), [], 'temp files removed after failure');
  });

  it('fails clearly on HTML and DRM playlists', async () => {
    origin.route('/page.m3u8', {
      body: '<!doctype html><html><body>Sign in</body></html>',
      contentType: 'text/html',
    });
    const html = await download({ url: `${origin.url}/page.m3u8` });
    assert.equal(html.error_code, 'GABE_ERR_NOT_A_PLAYLIST');
    origin.route('/drm.m3u8', {
      body: '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key"\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n',
    });
    const drm = await download({ url: `${origin.url}/drm.m3u8` });
    assert.equal(drm.error_code, 'GABE_ERR_DRM');
  });

  it('fetches playlists, segments and keys through an http or socks5 proxy named in the request', async () => {
    const url = `${origin.url}/aes/${aes.playlistName}`;
    const socks = await startSocks5();
    const proxy = await startProxy();
    try {
      await assertSameVideo(await download({ url, proxy: socks.url }), url);
      assert.ok(socks.targets.length >= 1);
      assert.ok(socks.targets.every((t) => t === `127.0.0.1:${origin.port}`));
      await assertSameVideo(await download({ url, proxy: proxy.url }), url);
      assert.ok(proxy.targets.length >= 1);
    } finally {
      await socks.close();
      await proxy.close();
    }
  });

  it('reports segments, bytes, speed and ETA while running, and cancels within a second', async () => {
    const ts = await makeHlsTs({ seconds: 30, segmentSeconds: 1 });
    origin.serveDir('/slow/', ts.dir);
    origin.addFault({ match: /\.ts$/, latencyMs: 250 });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/slow/${ts.playlistName}`, use_multithreading: false }),
      remoteAddress: '10.5.0.1',
    });
    const id = res.json().job_id;
    await svc.waitFor(id, (j) => j.downloaded_segments >= 3);
    const live = (await svc.app.inject({ method: 'GET', url: `/job/${id}` })).json();
    assert.equal(live.status, 'PROCESSING');
    assert.equal(live.total_segments, ts.segmentCount);
    assert.ok(live.downloaded_segments >= 3 && live.downloaded_segments < ts.segmentCount);
    assert.ok(live.progress > 0 && live.progress < 100);
    assert.ok(live.downloaded_bytes > 0 && live.speed_bps > 0 && live.eta_seconds > 0, JSON.stringify(live));
    const started = Date.now();
    const del = await svc.app.inject({ method: 'DELETE', url: `/job/${id}` });
    assert.ok(Date.now() - started < 1000);
    assert.equal(del.json().status, 'CANCELLED');
    const seen = origin.countRequests(/^\/slow\/.*\.ts$/);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(origin.countRequests(/^\/slow\/.*\.ts$/), seen, 'no segment requested after cancel');
    assert.deepEqual(readdirSync(svc.config.temp_path), [], 'temp files removed after cancel');
  });

  it('completes with a warning, not a failure, when the media is much shorter than the playlist says', async () => {
    const ts = await makeHlsTs({ seconds: 6, segmentSeconds: 2 });
    const text = readFileSync(ts.playlist, 'utf8').replace(/#EXTINF:[\d.]+/g, '#EXTINF:10.0');
    origin.serveDir('/lie/', ts.dir);
    origin.route('/lie/long.m3u8', {
      body: text.replace('#EXT-X-TARGETDURATION:2', '#EXT-X-TARGETDURATION:10'),
    });
    const job = await download({ url: `${origin.url}/lie/long.m3u8` });
    // Every segment came whole and was muxed: EXTINF is the claim that is wrong (issue 11, item 5).
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.ok(Math.abs(job.result!.duration_seconds! - 6) < 0.5, String(job.result!.duration_seconds));
    assert.match(job.result!.warnings?.join() ?? '', /EXTINF durations add up to 30\.00 s/);
  });

  it('merges 20,000 segments without open-file or command-line limits', async () => {
    const ts = await makeHlsTs({ seconds: 20, segmentSeconds: 20 });
    const file = readFileSync(path.join(path.dirname(ts.playlist), ts.segments[0]!));
    const n = 20_000;
    // Slice boundaries spread evenly, so no slice is empty (an empty answer is a failed segment).
    const cut = (i: number) => Math.floor((i * file.length) / n);
    const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:1', '#EXT-X-PLAYLIST-TYPE:VOD'];
    for (let i = 0; i < n; i++) lines.push(`#EXTINF:${(ts.duration / n).toFixed(6)},`, `/slice?i=${i}`);
    lines.push('#EXT-X-ENDLIST');
    origin.route('/many.m3u8', { body: lines.join('\n') });
    origin.route('/slice', (_req, _res, ctx) => {
      const i = Number(ctx.url.searchParams.get('i'));
      return ctx.send(file.subarray(cut(i), cut(i + 1)), { contentType: 'video/mp2t' });
    });
    // 20,000 requests: generous time on a loaded 2-core machine; speed is the benchmark's business.
    const job = await download({ url: `${origin.url}/many.m3u8` }, 240_000);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.result!.segment_count, n);
    assert.equal(origin.countRequests('/slice'), n);
  });
});
