/**
 * MPEG-DASH through the download pipeline: MPDs made by ffmpeg's dash muxer (every addressing mode),
 * downloaded through the API and `gabe download`, against `ffmpeg -c copy -i <the same MPD URL>`
 * (decoded frames and samples); resolution and audio_language choice; two periods; DRM; /probe and
 * `gabe info`.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { gabe } from '../helpers/cli.js';
import {
  boxes,
  type DashFixture,
  type DashMode,
  dashSourceReference,
  makeDash,
  makeDashMultiPeriod,
  makeDashNestedSidx,
} from '../helpers/dash-fixtures.js';
import {
  copyFixtureDir,
  decodedFrameHashes,
  decodedHash,
  durationOf,
  makeTempDir,
  runFfmpeg,
  streamsOf,
  writeFixtureFile,
} from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

let origin: Origin;
let svc: TestService;
let served = 0;
let client = 0;

before(async () => {
  origin = await startOrigin();
  svc = await startTestService({ max_jobs_per_ip: 0, max_retries: 1 });
});
after(async () => {
  await closeAllServices();
  await origin.close();
});

function serve(fx: { dir: string; mpdName: string }): string {
  const prefix = `/d${served++}/`;
  origin.serveDir(prefix, fx.dir);
  return `${origin.url}${prefix}${fx.mpdName}`;
}

async function submit(body: Record<string, unknown>): Promise<Job> {
  const res = await svc.app.inject({
    method: 'POST',
    url: '/download/',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
    remoteAddress: `10.9.0.${++client}`,
  });
  assert.equal(res.statusCode, 200, res.body);
  return svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED'], 60_000);
}

async function download(body: Record<string, unknown>): Promise<Job> {
  const job = await submit(body);
  assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
  return job;
}

/** `ffmpeg -i MPD -map 0:v:<video> -map 0:a:<audio> -c copy`: ffmpeg lists video representations first. */
async function reference(url: string, video = 0, audio = 0): Promise<string> {
  const out = path.join(await makeTempDir('dash-ref'), 'ref.mp4');
  await runFfmpeg(['-i', url, '-map', `0:v:${video}`, '-map', `0:a:${audio}`, '-c', 'copy', out]);
  return out;
}

/** The same decoded frames and samples as `ref`: one file, or the video and audio files apart. */
async function assertSameDecoded(
  mine: string,
  ref: string | { video: string; audio: string },
): Promise<void> {
  const [v, a] = typeof ref === 'string' ? [ref, ref] : [ref.video, ref.audio];
  assert.equal(await decodedHash(mine, 'v'), await decodedHash(v, 'v'), 'decoded frames');
  assert.equal(await decodedHash(mine, 'a'), await decodedHash(a, 'a'), 'decoded samples');
}

/** MD5 of every packet of one stream, in order (`ffmpeg -c copy -f framemd5`). */
async function packets(file: string, stream: 'v' | 'a'): Promise<string[]> {
  const out = await runFfmpeg(['-i', file, '-map', `0:${stream}:0`, '-c', 'copy', '-f', 'framemd5', '-']);
  return out
    .toString()
    .split('\n')
    .filter((l) => /^\d/.test(l))
    .map((l) => l.split(',').at(-1)!.trim());
}

/**
 * The same video packets as `ref`. For SegmentBase, ffmpeg 5.1's dash demuxer is no reference for
 * audio: its copy keeps the AAC priming the file's edit list trims, and with video mapped too it ends
 * two packets early; the decoded samples are compared with the files themselves instead.
 */
async function assertSameVideoPackets(mine: string, ref: string): Promise<void> {
  assert.deepEqual(await packets(mine, 'v'), await packets(ref, 'v'), 'video packets');
}

describe('a static MPD downloads to what ffmpeg -c copy makes of it', () => {
  const modes: { mode: DashMode; what: string }[] = [
    { mode: 'timeline', what: 'SegmentTemplate with SegmentTimeline and $Number$' },
    { mode: 'time', what: 'SegmentTemplate with SegmentTimeline and $Time$' },
    { mode: 'number', what: 'SegmentTemplate with @duration and $Number$' },
    { mode: 'list', what: 'SegmentList' },
    { mode: 'base', what: 'SegmentBase (sidx byte ranges)' },
  ];
  for (const { mode, what } of modes) {
    it(`${what}: the same decoded frames and samples through the API and gabe download`, async () => {
      const fx = await makeDash({ mode });
      const url = serve(fx);
      const job = await download({ url, video_name: `dash-${mode}` });
      const result = job.result!;
      assert.equal(result.source_format, 'dash');
      assert.equal(result.resolution, '320x240');
      const source = await dashSourceReference(fx);
      await assertSameDecoded(result.output_path, source);
      // Where ffmpeg's dash demuxer reads the whole MPD, its copy of the MPD URL is the same too.
      if (mode === 'number') await assertSameDecoded(result.output_path, await reference(url));
      if (mode === 'base') await assertSameVideoPackets(result.output_path, await reference(url));
      assert.ok(Math.abs((await durationOf(result.output_path)) - fx.seconds) < 0.2);

      const out = path.join(tempDir(), `dash-${mode}.mp4`);
      const run = gabe(['download', url, '-o', out]);
      assert.equal(await run.exit, 0, run.output());
      await assertSameDecoded(out, source);
    });
  }
});

describe('representations are chosen like HLS variants and renditions', () => {
  let fx: DashFixture;
  let url: string;
  before(async () => {
    fx = await makeDash({ mode: 'timeline', heights: [240, 120], languages: ['eng', 'fra'] });
    url = serve(fx);
  });

  it('resolution picks the video representation, audio_language the audio adaptation set', async () => {
    const job = await download({ url, resolution: '160x120', audio_language: 'fra' });
    const out = job.result!.output_path;
    assert.equal(job.result!.resolution, '160x120');
    await assertSameDecoded(out, await dashSourceReference(fx, 1, 1));
    assert.notEqual(
      await decodedHash(out, 'a'),
      await decodedHash((await dashSourceReference(fx, 1, 0)).audio, 'a'),
    );
  });

  it('without a choice: the highest bandwidth video and the first audio set', async () => {
    const job = await download({ url });
    assert.equal(job.result!.resolution, '320x240');
    await assertSameDecoded(job.result!.output_path, await dashSourceReference(fx, 0, 0));
  });

  it('audio_only keeps the chosen audio adaptation set alone, in an .m4a', async () => {
    const job = await download({ url, audio_only: true, audio_language: 'fra' });
    const out = job.result!.output_path;
    assert.equal(job.result!.container, 'm4a');
    assert.deepEqual(
      (await streamsOf(out)).map((s) => s.codec_type),
      ['audio'],
    );
    assert.equal(
      await decodedHash(out, 'a'),
      await decodedHash((await dashSourceReference(fx, 0, 1)).audio, 'a'),
    );
  });

  it('SegmentBase representations are chosen the same way', async () => {
    const base = await makeDash({ mode: 'base', heights: [240, 120], languages: ['eng', 'fra'] });
    const baseUrl = serve(base);
    const job = await download({ url: baseUrl, resolution: '120p', audio_language: 'fra' });
    assert.equal(job.result!.resolution, '160x120');
    await assertSameVideoPackets(job.result!.output_path, await reference(baseUrl, 1, 1));
    await assertSameDecoded(job.result!.output_path, await dashSourceReference(base, 1, 1));
  });
});

describe('SegmentBase without indexRange', () => {
  it("finds the sidx among the file head's boxes and the init before it: the same frames and samples", async () => {
    const base = await makeDash({ mode: 'base' });
    const dir = await copyFixtureDir(base.dir);
    const text = await readFile(path.join(dir, base.mpdName), 'utf8');
    const bare = text.replace(/ indexRange="[^"]*"/g, '').replace(/<Initialization[^>]*\/>/g, '');
    assert.doesNotMatch(bare, /indexRange|Initialization/);
    await writeFile(path.join(dir, base.mpdName), bare);
    const url = serve({ dir, mpdName: base.mpdName });
    const job = await download({ url });
    await assertSameDecoded(job.result!.output_path, await dashSourceReference(base));
  });
});

describe('SegmentBase with a hierarchical sidx', () => {
  it('follows reference_type 1 entries to the sidx of each segment: the same frames and samples', async () => {
    const fx = await makeDashNestedSidx();
    const url = serve(fx);
    const job = await download({ url });
    assert.equal(job.result!.segment_count, fx.seconds);
    await assertSameDecoded(job.result!.output_path, await dashSourceReference(fx));
    // Each inner sidx was read (a range starting at it), so the references were followed, not taken
    // as media (which would decode the same: ffmpeg skips a stray sidx).
    const sidxes = (await boxes(path.join(fx.dir, 'nested-0.mp4'))).filter(([t]) => t === 'sidx');
    assert.equal(sidxes.length, fx.seconds + 1, 'the top sidx and one per segment');
    const starts = origin.requests
      .filter((r) => r.path.endsWith('/nested-0.mp4'))
      .map((r) => Number(/bytes=(\d+)-/.exec(String(r.headers.range))?.[1]));
    for (const [, at] of sidxes.slice(1)) assert.ok(starts.includes(at), `inner sidx at ${at} read`);
  });
});

describe('two periods', () => {
  it('are joined in order: the frames and audio packets of each period, as ffmpeg -c copy of each gives them', async () => {
    const fx = await makeDashMultiPeriod(3);
    const url = serve(fx);
    const job = await download({ url });
    const out = job.result!.output_path;
    const mine = await decodedFrameHashes(out);
    const base = url.slice(0, -fx.mpdName.length);
    const parts: string[] = [];
    const audioParts: string[] = [];
    for (const p of fx.parts) {
      const ref = await reference(`${base}${p}/out.mpd`);
      parts.push(...(await decodedFrameHashes(ref)));
      audioParts.push(...(await packets(ref, 'a')));
    }
    assert.equal(mine.length, parts.length, 'frame count');
    assert.deepEqual(mine, parts);
    assert.deepEqual(await packets(out, 'a'), audioParts, 'audio packets');
    assert.ok(Math.abs((await durationOf(job.result!.output_path)) - 6) < 0.3);
  });
});

describe('DRM', () => {
  it('an MPD with ContentProtection fails with GABE_ERR_DRM before any segment is fetched', async () => {
    const fx = await makeDash({ mode: 'number' });
    const dir = await makeTempDir('dash-drm');
    const text = await readFile(path.join(fx.dir, fx.mpdName), 'utf8');
    const protectedMpd = text.replace(
      /(<AdaptationSet[^>]*contentType="video"[^>]*>)/,
      '$1<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"/>' +
        '<ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"/>',
    );
    assert.notEqual(protectedMpd, text);
    await writeFixtureFile(dir, 'drm.mpd', protectedMpd);
    const prefix = `/drm${served++}/`;
    origin.serveDir(prefix, dir);
    const before = origin.countRequests(/\.m4s$/);
    const job = await submit({ url: `${origin.url}${prefix}drm.mpd` });
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_DRM');
    assert.match(job.error ?? '', /DRM-protected/);
    assert.equal(origin.countRequests(/\.m4s$/), before, 'no segment fetched');
  });
});

describe('/probe, gabe info and gabe download on an MPD', () => {
  let fx: DashFixture;
  let url: string;
  before(async () => {
    fx = await makeDash({ mode: 'timeline', heights: [240, 120], languages: ['eng', 'fra'] });
    url = serve(fx);
  });

  it('/probe reports the MPD like an HLS master, with format dash', async () => {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/probe',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url }),
      remoteAddress: `10.9.1.${++client}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    const p = res.json();
    assert.equal(p.kind, 'master');
    assert.equal(p.format, 'dash');
    assert.equal(p.live, false);
    assert.ok(Math.abs(p.duration_seconds - fx.seconds) < 0.1);
    assert.deepEqual(
      p.variants.map((v: { resolution: string }) => v.resolution),
      ['320x240', '160x120'],
    );
    assert.ok(p.variants.every((v: { codecs: string }) => v.codecs.startsWith('avc1')));
    assert.deepEqual(
      p.audio.map((a: { language: string; default: boolean }) => [a.language, a.default]),
      [
        ['eng', true],
        ['fra', false],
      ],
    );
    assert.equal(p.encrypted, false);
  });

  it('gabe info --json lists the representations and the audio languages, format dash', async () => {
    const run = gabe(['info', '--json', url]);
    assert.equal(await run.exit, 0, run.output());
    const info = JSON.parse(run.stdout());
    assert.equal(info.format, 'dash');
    assert.equal(info.kind, 'master');
    assert.equal(info.live, false);
    assert.deepEqual(
      info.variants.map((v: { resolution: string }) => v.resolution),
      ['320x240', '160x120'],
    );
    assert.deepEqual(
      info.renditions.map((r: { language: string }) => r.language),
      ['eng', 'fra'],
    );
    const table = gabe(['info', url]);
    assert.equal(await table.exit, 0, table.output());
    assert.match(table.stdout(), /MPEG-DASH MPD \(static/);
  });

  it("gabe download takes an MPD URL, -r and --audio-language: the chosen representations' frames and samples", async () => {
    const out = path.join(tempDir(), 'dash.mp4');
    const run = gabe(['download', url, '-o', out, '--resolution', '160x120', '--audio-language', 'fra']);
    assert.equal(await run.exit, 0, run.output());
    assert.equal(run.stdout().trim(), out);
    await assertSameDecoded(out, await dashSourceReference(fx, 1, 1));
  });

  it('gabe download recognises an MPD by its body at a URL without .mpd, served as text/plain', async () => {
    const text = await readFile(path.join(fx.dir, fx.mpdName), 'utf8');
    const watch = url.replace(/out\.mpd$/, 'watch');
    origin.route(new URL(watch).pathname, { body: text, contentType: 'text/plain' });
    const out = path.join(tempDir(), 'sniffed.mp4');
    const run = gabe(['download', watch, '-o', out]);
    assert.equal(await run.exit, 0, run.output());
    await assertSameDecoded(out, await dashSourceReference(fx, 0, 0));
  });

  it('gabe download takes a SegmentBase MPD (sidx) the same way', async () => {
    const base = await makeDash({ mode: 'base' });
    const baseUrl = serve(base);
    const out = path.join(tempDir(), 'dash-base.mp4');
    const run = gabe(['download', baseUrl, '-o', out]);
    assert.equal(await run.exit, 0, run.output());
    await assertSameVideoPackets(out, await reference(baseUrl));
    await assertSameDecoded(out, await dashSourceReference(base));
  });
});
