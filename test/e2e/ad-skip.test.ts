/**
 * Ad and filler skipping (`skip_segments`, `skip_discontinuity_runs`) through the service: a playlist
 * programme – ad – programme, the ad encoded apart (another picture size, tone and timestamps) under
 * /ads/, discontinuities around it. The job's file must hold what `ffmpeg -c copy` makes of the same
 * playlist listing only the programme's segments (with a discontinuity where the ad was).
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { decodedHash, makeTempDir, runFfmpeg, streamsOf, writeFixtureFile } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import {
  assertSubtitleCues,
  cuesOf,
  firstPts,
  type HlsSubtitlesFixture,
  makeHlsSubtitles,
  sidecarCues,
} from '../helpers/subtitles.js';

let origin: Origin;
let svc: TestService;
let dir: string;
let client = 0;

const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-r', '25', '-g', '50'];
const keyframes = ['-force_key_frames', 'expr:gte(t,n_forced*2)', '-sc_threshold', '0'];
const aac = ['-c:a', 'aac', '-b:a', '64k', '-ac', '2', '-ar', '48000'];
const hls = (pattern: string) => [
  ...['-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod', '-hls_segment_filename', pattern],
];
const lavfi = (video: string, hz: number, seconds: number) => [
  ...['-f', 'lavfi', '-i', `${video}:rate=25:duration=${seconds}`],
  ...['-f', 'lavfi', '-i', `sine=frequency=${hz}:sample_rate=48000:duration=${seconds}`],
];

/**
 * `prog/` 12 s of programme (6 × 2 s) and `ads/` a 4 s ad (2 × 2 s) starting at 100 s, each as
 * muxed A/V (`<sub>/m_*.ts`) and as separate video and audio (`<sub>/v_*.ts`, `<sub>/a_*.ts`).
 */
async function encode(): Promise<string> {
  const d = await makeTempDir('ad-skip');
  const parts = [
    { sub: 'prog', src: lavfi('testsrc2=size=160x90', 440, 12), offset: [] as string[] },
    { sub: 'ads', src: lavfi('smptebars=size=240x136', 880, 4), offset: ['-output_ts_offset', '100'] },
  ];
  for (const p of parts) {
    await mkdir(path.join(d, p.sub));
    await runFfmpeg(
      [
        ...p.src,
        ...['-map', '0:v', '-map', '1:a', ...x264, ...keyframes, ...aac, ...p.offset],
        ...hls(`${p.sub}/m_%03d.ts`),
        `${p.sub}/m.m3u8`,
        ...[
          '-map',
          '0:v',
          ...x264,
          ...keyframes,
          ...p.offset,
          ...hls(`${p.sub}/v_%03d.ts`),
          `${p.sub}/v.m3u8`,
        ],
        ...['-map', '1:a', ...aac, ...p.offset, ...hls(`${p.sub}/a_%03d.ts`), `${p.sub}/a.m3u8`],
      ],
      d,
    );
  }
  return d;
}

/** A VOD media playlist of 2 s segments `kind_NNN.ts`: programme 0–2, [ad 0–1,] programme 3–5. */
function playlist(kind: 'm' | 'v' | 'a', withAd: boolean): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:2', '#EXT-X-PLAYLIST-TYPE:VOD'];
  const seg = (sub: string, i: number) => [
    '#EXTINF:2.000000,',
    `${sub}/${kind}_${String(i).padStart(3, '0')}.ts`,
  ];
  for (const i of [0, 1, 2]) lines.push(...seg('prog', i));
  lines.push('#EXT-X-DISCONTINUITY');
  if (withAd) lines.push(...seg('ads', 0), ...seg('ads', 1), '#EXT-X-DISCONTINUITY');
  for (const i of [3, 4, 5]) lines.push(...seg('prog', i));
  lines.push('#EXT-X-ENDLIST', '');
  return lines.join('\n');
}

function master(name: string): string {
  return [
    '#EXTM3U',
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,' +
      `URI="${name}-a.m3u8"`,
    '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=160x90,CODECS="avc1.42c00b,mp4a.40.2",AUDIO="aud"',
    `${name}-v.m3u8`,
    '',
  ].join('\n');
}

before(async () => {
  dir = await encode();
  for (const kind of ['m', 'v', 'a'] as const) {
    await writeFixtureFile(dir, `ad-${kind}.m3u8`, playlist(kind, true));
    await writeFixtureFile(dir, `prog-${kind}.m3u8`, playlist(kind, false));
  }
  await writeFixtureFile(dir, 'ad-master.m3u8', master('ad'));
  await writeFixtureFile(dir, 'prog-master.m3u8', master('prog'));
  origin = await startOrigin();
  origin.serveDir('/s/', dir);
  svc = await startTestService({ max_jobs_per_ip: 0 });
});
after(async () => {
  await closeAllServices();
  await origin.close();
});

async function post(body: Record<string, unknown>) {
  return svc.app.inject({
    method: 'POST',
    url: '/download/',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
    remoteAddress: `10.15.0.${++client}`,
  });
}

async function download(body: Record<string, unknown>): Promise<Job> {
  const res = await post(body);
  assert.equal(res.statusCode, 200, res.body);
  const job = await svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
  return job;
}

/** `ffmpeg -i <programme-only playlist> -c copy`. */
async function reference(file: string): Promise<string> {
  const out = path.join(await makeTempDir('ad-skip-ref'), 'ref.mp4');
  await runFfmpeg(['-i', `${origin.url}/s/${file}`, '-map', '0:v', '-map', '0:a', '-c', 'copy', out]);
  return out;
}

/** Each stream's start and duration, seconds, video first. */
async function timing(file: string) {
  const streams = await streamsOf(file);
  return ['video', 'audio'].map((kind) => {
    const s = streams.find((x) => x.codec_type === kind);
    assert.ok(s, `${file} has ${kind}`);
    return { start: Number(s.start_time), duration: Number(s.duration), width: s.width };
  });
}

/** The programme's frames and samples, as ffmpeg copies them, and A/V together within a frame. */
async function assertProgrammeOnly(mine: string, ref: string): Promise<void> {
  assert.equal(await decodedHash(mine, 'v'), await decodedHash(ref, 'v'), 'decoded frames');
  const [[mv, ma], [rv, ra]] = [await timing(mine), await timing(ref)];
  assert.equal(mv!.width, 160, 'no ad picture size');
  assert.ok(
    Math.abs(mv!.duration - rv!.duration) < 0.05,
    `video ${mv!.duration} s, ffmpeg's ${rv!.duration} s`,
  );
  assert.ok(
    Math.abs(ma!.duration - ra!.duration) < 0.05,
    `audio ${ma!.duration} s, ffmpeg's ${ra!.duration} s`,
  );
  // In sync: audio and video end together, as the programme's do (12 s each).
  const end = (t: { start: number; duration: number }) => t.start + t.duration;
  assert.ok(Math.abs(end(mv!) - end(ma!)) < 0.05, `video ends at ${end(mv!)} s, audio at ${end(ma!)} s`);
}

const adRequests = () => origin.countRequests(/^\/s\/ads\//);

describe('ads are left out of the download, the programme kept whole and in sync', () => {
  it('skip_segments: segments whose URL matches are not fetched; the file is the programme alone', async () => {
    origin.reset();
    const job = await download({ url: `${origin.url}/s/ad-m.m3u8`, skip_segments: ['/ads/'] });
    assert.equal(adRequests(), 0);
    assert.deepEqual(job.result?.skipped, { segments: 2, seconds: 4 });
    assert.equal(job.result?.segment_count, 6);
    await assertProgrammeOnly(job.result!.output_path, await reference('prog-m.m3u8'));
    assert.equal(
      await decodedHash(job.result!.output_path, 'a'),
      await decodedHash(await reference('prog-m.m3u8'), 'a'),
    );
  });

  it('skip_discontinuity_runs: the 4 s run between discontinuities goes, the 6 s runs stay', async () => {
    origin.reset();
    const job = await download({ url: `${origin.url}/s/ad-m.m3u8`, skip_discontinuity_runs: 5 });
    assert.equal(adRequests(), 0);
    assert.deepEqual(job.result?.skipped, { segments: 2, seconds: 4 });
    await assertProgrammeOnly(job.result!.output_path, await reference('prog-m.m3u8'));
  });

  it('skip_discontinuity_runs longer than every run skips nothing and says so', async () => {
    const job = await download({ url: `${origin.url}/s/ad-m.m3u8`, skip_discontinuity_runs: 10 });
    assert.equal(job.result?.skipped, undefined);
    assert.equal(job.result?.segment_count, 8);
    assert.ok(
      job.result?.warnings?.some((w) => /none was skipped/.test(w)),
      String(job.result?.warnings),
    );
  });

  it('a separate audio rendition loses the same time as the video: A/V stay in sync', async () => {
    origin.reset();
    const job = await download({ url: `${origin.url}/s/ad-master.m3u8`, skip_segments: ['/ads/v_'] });
    // The pattern names only the video's ad segments; the audio's go with them, by time.
    assert.equal(adRequests(), 0);
    assert.deepEqual(job.result?.skipped, { segments: 2, seconds: 4 });
    await assertProgrammeOnly(job.result!.output_path, await reference('prog-master.m3u8'));
  });

  it('a segment removed from a playlist without discontinuities: the next starts a new run, no hole', async () => {
    const plain = playlist('m', false).replace('#EXT-X-DISCONTINUITY\n', '');
    await writeFixtureFile(dir, 'plain-m.m3u8', plain);
    const job = await download({ url: `${origin.url}/s/plain-m.m3u8`, skip_segments: ['prog/m_001\\.ts$'] });
    assert.deepEqual(job.result?.skipped, { segments: 1, seconds: 2 });
    // Without a new run the file would hold a 2 s hole (one frame shown for 2 s): 12 s, not 10.
    const [v, a] = await timing(job.result!.output_path);
    assert.ok(Math.abs(v!.duration - 10) < 0.05, `video ${v!.duration} s`);
    assert.ok(Math.abs(a!.duration - 10) < 0.05, `audio ${a!.duration} s`);
    const cut = plain.replace(/#EXTINF[^\n]*\nprog\/m_001\.ts\n/, '#EXT-X-DISCONTINUITY\n');
    await writeFixtureFile(dir, 'cut-m.m3u8', cut);
    const ref = await reference('cut-m.m3u8');
    assert.equal(await decodedHash(job.result!.output_path, 'v'), await decodedHash(ref, 'v'));
  });

  it('with a clip, the window is on the original timeline and the skipping inside it', async () => {
    origin.reset();
    // [3, 13) of the original timeline: programme 3–6, ad 6–10 (skipped), programme 10–13.
    const job = await download({
      url: `${origin.url}/s/ad-m.m3u8`,
      skip_segments: ['/ads/'],
      start: 3,
      end: 13,
    });
    assert.equal(adRequests(), 0);
    assert.deepEqual(job.result?.skipped, { segments: 2, seconds: 4 });
    const [v] = await timing(job.result!.output_path);
    // 3 to 6 and 10 to 13: 6 s, from the keyframe at 2 s (1 s of pre-roll, hidden by the edit list).
    assert.ok(Math.abs(v!.duration - 6) < 0.1, `video ${v!.duration} s`);
  });
});

describe('subtitles of a download with skipped segments', () => {
  // Source cues (helpers/subtitles.ts) sit at source + videoOffset on the whole file's timeline.
  let fx: HlsSubtitlesFixture;
  before(async () => {
    fx = await makeHlsSubtitles();
    origin.serveDir('/subs/', fx.dir);
  });
  const skipping = (segment: string) =>
    download({ url: `${origin.url}/subs/${fx.masterName}`, skip_segments: [`/video/${segment}\\.ts$`] });

  it('cues in skipped time go, a cue across it is joined over the cut, later cues move up with the video', async () => {
    // Video segment 1, [2, 4) of 8 s, skipped: the file is [0, 2) then [4, 8).
    const job = await skipping('seg_001');
    assert.deepEqual(job.result?.skipped, { segments: 1, seconds: 2 });
    const d = fx.videoOffset;
    await assertSubtitleCues(fx, job.result!, [
      { cue: 0, start: 0.5 + d, end: 1.5 + d },
      { cue: 1, start: 1.8 + d, end: 2 },
      { cue: 3, start: 2, end: 4.1 + d },
      { cue: 4, start: 5 + d, end: 5.8 + d },
    ]);
  });

  it('the first segment skipped: the file and its cues start at the second', async () => {
    const job = await skipping('seg_000');
    const d = fx.videoOffset;
    await assertSubtitleCues(fx, job.result!, [
      { cue: 1, start: 0, end: 0.6 + d },
      { cue: 2, start: 1 + d, end: 1.9 + d },
      { cue: 3, start: 1.95 + d, end: 4.1 + d },
      { cue: 4, start: 5 + d, end: 5.8 + d },
    ]);
  });
});

describe('subtitles timed by X-TIMESTAMP-MAP across discontinuities', () => {
  // Apple-style WebVTT: each segment maps its cue time 0 to its video segment's first PTS. The ad
  // runs on its own clock (100 s on); the programme after it picks up its clock where it left off
  // (6 s), four seconds short of the playlist's 10 s: each run's cues must follow that run's clock.
  const names = ['p0', 'p1', 'p2', 'a0', 'a1', 'p3', 'p4', 'p5'];
  let url = '';

  before(async () => {
    const media = playlist('m', true).split('\n');
    let k = 0;
    const lines: string[] = [];
    for (const line of media) {
      const m = /^(prog|ads)\/m_(\d+)\.ts$/.exec(line);
      if (!m) {
        lines.push(line);
        continue;
      }
      const name = names[k++]!;
      const pts = await firstPts(path.join(dir, line), 'v:0');
      const vtt = `WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:${pts},LOCAL:00:00:00.000\n\n00:00.500 --> 00:01.500\n${name}\n`;
      await writeFixtureFile(dir, `subs/${name}.vtt`, vtt);
      lines.push(`subs/${name}.vtt`);
    }
    await writeFixtureFile(dir, 'subs.m3u8', lines.join('\n'));
    await writeFixtureFile(
      dir,
      'subs-master.m3u8',
      [
        '#EXTM3U',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="s",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="subs.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=160x90,CODECS="avc1.42c00b,mp4a.40.2",SUBTITLES="s"',
        'ad-m.m3u8',
        '',
      ].join('\n'),
    );
    url = `${origin.url}/s/subs-master.m3u8`;
  });

  async function assertCuesAt(job: Job, expected: [string, number][]): Promise<void> {
    const files = [job.result!.output_path, job.result!.subtitles![0]!.path];
    for (const cues of [await cuesOf(files[0]!, 0), await sidecarCues(files[1]!)]) {
      assert.deepEqual(
        cues.map((c) => c.text),
        expected.map((e) => e[0]),
      );
      for (const [j, c] of cues.entries()) {
        assert.ok(
          Math.abs(c.start - expected[j]![1]) < 0.06,
          `${c.text} at ${c.start} s, not ${expected[j]![1]}`,
        );
      }
    }
  }

  it('the whole download: every cue where its segment plays', async () => {
    const job = await download({ url });
    await assertCuesAt(
      job,
      names.map((n, i): [string, number] => [n, i * 2 + 0.5]),
    );
  });

  it('the ad skipped: the programme after it keeps its cues, moved up with the video', async () => {
    const job = await download({ url, skip_segments: ['/ads/'] });
    assert.deepEqual(job.result?.skipped, { segments: 2, seconds: 4 });
    await assertCuesAt(
      job,
      names.filter((n) => n.startsWith('p')).map((n, i): [string, number] => [n, i * 2 + 0.5]),
    );
  });
});

describe('skip_segments patterns are checked at submission', () => {
  for (const [name, pattern] of [
    ['an invalid regular expression', '(ads'],
    ['nested quantifiers', '(a+)+$'],
  ]) {
    it(`${name} is a 422 GABE_ERR_VALIDATION`, async () => {
      const res = await post({ url: `${origin.url}/s/ad-m.m3u8`, skip_segments: [pattern] });
      assert.equal(res.statusCode, 422, res.body);
      assert.equal(res.json().error_code ?? res.json().code, 'GABE_ERR_VALIDATION', res.body);
    });
  }
});
