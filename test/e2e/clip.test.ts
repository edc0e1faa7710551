/**
 * Clips by time (`start`/`end`) of HLS playlists, through the service, against ffmpeg: the job's file
 * must equal `ffmpeg -ss S -to E -i full.mp4 -c copy`, where full.mp4 is `ffmpeg -i <playlist> -c copy`
 * of the whole playlist. Not `ffmpeg -ss S -i <playlist URL>`: ffmpeg's hls demuxer seeks differently
 * (it drops packets up to the first keyframe at or after S, libavformat/hls.c hls_read_packet), where
 * the issue asks for the MP4 input seek's rule: from the last keyframe at or before S. The fixtures
 * have 1 s segments and a keyframe every 2 s, so every other segment starts without one.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { gabe } from '../helpers/cli.js';
import { streamFacts } from '../helpers/differential.js';
import {
  decodedHash,
  durationOf,
  makeHlsAes,
  makeHlsFmp4,
  makeTempDir,
  runFfmpeg,
  runFfprobe,
  streamsOf,
  writeFixtureFile,
} from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { assertSubtitleCues, makeHlsSubtitles } from '../helpers/subtitles.js';
import { tempDir } from '../helpers/tmp.js';

const SECONDS = 24;

let origin: Origin;
let svc: TestService;
let dir: string;
let client = 0;

const encode = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-r', '25'];
// A keyframe every 2 s, segments cut every 1 s regardless (split_by_time).
const gop = ['-force_key_frames', 'expr:gte(t,n_forced*2)', '-sc_threshold', '0', '-g', '50'];
const aac = ['-c:a', 'aac', '-b:a', '64k', '-ac', '2', '-ar', '48000'];
const hls = (pattern: string) => [
  ...['-f', 'hls', '-hls_time', '1', '-hls_flags', 'split_by_time', '-hls_playlist_type', 'vod'],
  ...['-hls_segment_filename', pattern],
];

/** muxed/index.m3u8 (A/V in one TS), and master.m3u8 with video/ and a separate audio/ rendition. */
async function makeFixtures(): Promise<string> {
  const d = await makeTempDir('clip');
  for (const sub of ['muxed', 'video', 'audio']) await mkdir(path.join(d, sub));
  const sources = [
    ...['-f', 'lavfi', '-i', `testsrc2=size=160x90:rate=25:duration=${SECONDS}`],
    ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${SECONDS}`],
  ];
  await runFfmpeg(
    [
      ...sources,
      ...['-map', '0:v', '-map', '1:a', ...encode, ...gop, ...aac, ...hls('muxed/seg_%03d.ts')],
      'muxed/index.m3u8',
      ...['-map', '0:v', ...encode, ...gop, ...hls('video/seg_%03d.ts'), 'video/index.m3u8'],
      ...['-map', '1:a', ...aac, ...hls('audio/seg_%03d.ts'), 'audio/index.m3u8'],
    ],
    d,
  );
  await writeFixtureFile(
    d,
    'master.m3u8',
    [
      '#EXTM3U',
      '#EXT-X-VERSION:3',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"',
      '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=160x90,CODECS="avc1.42c00b,mp4a.40.2",AUDIO="aud"',
      'video/index.m3u8',
      '',
    ].join('\n'),
  );
  return d;
}

before(async () => {
  dir = await makeFixtures();
  origin = await startOrigin();
  origin.serveDir('/clip/', dir);
  svc = await startTestService({ max_jobs_per_ip: 0 });
});
after(async () => {
  await closeAllServices();
  await origin.close();
});

async function submit(body: Record<string, unknown>): Promise<Job> {
  const res = await svc.app.inject({
    method: 'POST',
    url: '/download/',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
    remoteAddress: `10.14.0.${++client}`,
  });
  assert.equal(res.statusCode, 200, res.body);
  return svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
}

async function clip(body: Record<string, unknown>): Promise<Job> {
  const job = await submit(body);
  assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
  return job;
}

const references = new Map<string, Promise<string>>();
/** Gabe's download of the whole playlist, once per playlist. */
function fullCopy(url: string): Promise<string> {
  let ref = references.get(url);
  if (!ref) {
    ref = clip({ url, video_name: `full-${references.size}` }).then((job) => job.result!.output_path);
    references.set(url, ref);
  }
  return ref;
}

/** The earliest first timestamp of segment `k` across the renditions (folders) given. */
async function segmentStart(subs: string[], k: number): Promise<number> {
  const starts: number[] = [];
  for (const sub of subs) {
    const file = path.join(dir, sub, `seg_${String(k).padStart(3, '0')}.ts`);
    const out = await runFfprobe(['-show_entries', 'stream=start_time', '-of', 'csv=p=0', file]);
    for (const line of out.toString().split('\n')) if (line.trim()) starts.push(Number(line));
  }
  return Math.min(...starts);
}

/**
 * `ffmpeg -ss S [-to E] -i full.mp4 -c copy`, S and E moved from the playlist's EXTINF timeline to the
 * full file's: Gabe places the clip's first segment (`first`) at its EXTINF start, while in the full
 * file it starts where its timestamps say (here up to a frame later: the video starts 21 ms after the
 * audio, and segments are cut by time).
 */
async function reference(url: string, subs: string[], first: number, start: number, end: number | null) {
  const shift = (await segmentStart(subs, first)) - (await segmentStart(subs, 0)) - first;
  const out = path.join(await makeTempDir('clip-ref'), 'ref.mp4');
  const to = end === null ? [] : ['-to', (end + shift).toFixed(6)];
  const ss = ['-ss', (start + shift).toFixed(6)];
  await runFfmpeg([...ss, ...to, '-i', await fullCopy(url), '-map', '0', '-c', 'copy', out]);
  return out;
}

/**
 * The same clip as ffmpeg's: the same video packets (bytes and seek points) and decoded frames, the
 * same audio packets but, at most, the first of ffmpeg's: the AAC frame that begins just before the
 * first kept segment's keyframe lies in the segment before it, which Gabe does not fetch (it is in the
 * pre-roll the edit list hides, before the clip's start).
 */
async function assertSameClip(mine: string, ref: string): Promise<void> {
  const [a, b] = [await streamFacts(mine), await streamFacts(ref)];
  assert.deepEqual(
    a.map((s) => s.kind),
    ['video', 'audio'],
  );
  assert.deepEqual(
    b.map((s) => s.kind),
    ['video', 'audio'],
  );
  assert.deepEqual(a[0]!.packets, b[0]!.packets, 'video packets');
  assert.deepEqual(a[0]!.keyframes, b[0]!.keyframes, 'video seek points');
  const [mineAudio, refAudio] = [a[1]!.packets, b[1]!.packets];
  assert.ok(
    refAudio.length - mineAudio.length <= 1,
    `audio: ${mineAudio.length} packets, ffmpeg's ${refAudio.length}`,
  );
  assert.deepEqual(mineAudio, refAudio.slice(refAudio.length - mineAudio.length), 'audio packets');
  assert.equal(await decodedHash(mine, 'v'), await decodedHash(ref, 'v'), 'decoded frames');
  const [da, db] = [await durationOf(mine), await durationOf(ref)];
  assert.ok(Math.abs(da - db) <= 0.03, `duration ${da} s, ffmpeg's ${db} s`);
}

const segmentsServed = (prefix: string) =>
  origin.countRequests(new RegExp(`^/clip/${prefix}/seg_\\d+\\.ts$`));

describe('clips of a VOD playlist equal ffmpeg -ss S -to E of the whole playlist', () => {
  const muxed = () => `${origin.url}/clip/muxed/index.m3u8`;

  it('a clip starting on a segment that begins with a keyframe fetches only the covering segments', async () => {
    origin.reset();
    const job = await clip({ url: muxed(), start: 6.5, end: 10.22 });
    // Segments 6..10 cover [6.5, 10.22); segment 6 is probed alone first (no EXT-X-INDEPENDENT-SEGMENTS).
    assert.equal(segmentsServed('muxed'), 1 + 5);
    assert.deepEqual(job.result?.clip, { start: 6.5, end: 10.22 });
    assert.equal(job.total_segments, 5);
    await assertSameClip(job.result!.output_path, await reference(muxed(), ['muxed'], 6, 6.5, 10.22));
    assert.ok(
      Math.abs((job.result!.duration_seconds ?? 0) - (await durationOf(job.result!.output_path))) < 0.01,
    );
  });

  it('a clip starting in a segment without a keyframe begins at the keyframe before it, in the segment before', async () => {
    origin.reset();
    const job = await clip({ url: muxed(), start: 5.5, end: 9.1 });
    // Segment 5 probed alone (no keyframe by 5.5), then 4 (one), then 4..9 downloaded.
    assert.equal(segmentsServed('muxed'), 2 + 6);
    assert.equal(job.downloaded_segments, 6);
    assert.equal(job.total_segments, 6);
    await assertSameClip(job.result!.output_path, await reference(muxed(), ['muxed'], 4, 5.5, 9.1));
  });

  it('a playlist with EXT-X-INDEPENDENT-SEGMENTS is not probed: only the covering segments are fetched', async () => {
    const text = await readFile(path.join(dir, 'muxed/index.m3u8'), 'utf8');
    await writeFixtureFile(
      dir,
      'muxed/independent.m3u8',
      text.replace('#EXTM3U\n', '#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n'),
    );
    origin.reset();
    const url = `${origin.url}/clip/muxed/independent.m3u8`;
    const job = await clip({ url, start: 6.5, end: 10.22 });
    assert.equal(segmentsServed('muxed'), 5);
    await assertSameClip(job.result!.output_path, await reference(muxed(), ['muxed'], 6, 6.5, 10.22));
  });

  it('HH:MM:SS.mmm times through the API', async () => {
    const job = await clip({ url: muxed(), start: '00:00:07.260', end: '0:12.5' });
    assert.deepEqual(job.result?.clip, { start: 7.26, end: 12.5 });
    await assertSameClip(job.result!.output_path, await reference(muxed(), ['muxed'], 6, 7.26, 12.5));
  });

  it('end only: from the start of the media', async () => {
    origin.reset();
    const job = await clip({ url: muxed(), end: 3.5 });
    assert.equal(segmentsServed('muxed'), 4);
    assert.deepEqual(job.result?.clip, { start: 0, end: 3.5 });
    await assertSameClip(job.result!.output_path, await reference(muxed(), ['muxed'], 0, 0, 3.5));
  });

  it('start only: to the end of the media', async () => {
    origin.reset();
    const job = await clip({ url: muxed(), start: 20.3 });
    assert.equal(segmentsServed('muxed'), 1 + SECONDS - 20);
    assert.deepEqual(job.result?.clip, { start: 20.3, end: null });
    await assertSameClip(job.result!.output_path, await reference(muxed(), ['muxed'], 20, 20.3, null));
  });

  it('a separate audio rendition is clipped to the same window', async () => {
    origin.reset();
    const master = `${origin.url}/clip/master.m3u8`;
    const job = await clip({ url: master, start: 8.42, end: 15.1 });
    // Segments 8..15 of each rendition, video segment 8 probed first.
    assert.equal(segmentsServed('video'), 1 + 8);
    assert.equal(segmentsServed('audio'), 8);
    await assertSameClip(job.result!.output_path, await reference(master, ['video', 'audio'], 8, 8.42, 15.1));
  });
});

describe('clips of encrypted and fMP4 playlists', () => {
  it('AES-128 with IVs from the media sequence and rotating keys: the same clip as of the clear playlist', async () => {
    const aes = await makeHlsAes({ iv: 'implicit', rotateEvery: 2, seconds: 10, segmentSeconds: 2 });
    origin.serveDir('/clip-aes/', aes.dir);
    origin.serveDir('/clip-plain/', aes.plain!.dir);
    origin.reset();
    // [5.02, 7.98): segments 2 and 3, under the second key, IVs from sequence numbers 7 and 8.
    const body = { start: 5.02, end: 7.98 };
    const encrypted = await clip({ url: `${origin.url}/clip-aes/index.m3u8`, ...body });
    assert.equal(origin.countRequests(/^\/clip-aes\/.*\.ts$/), 1 + 2, 'segment 2 probed, then 2 and 3');
    assert.equal(origin.countRequests(/^\/clip-aes\/key\d\.key$/), 1, 'only the second key');
    const clear = await clip({ url: `${origin.url}/clip-plain/index.m3u8`, ...body });
    const [a, b] = [
      await streamFacts(encrypted.result!.output_path),
      await streamFacts(clear.result!.output_path),
    ];
    assert.deepEqual(
      a.map((s) => s.packets),
      b.map((s) => s.packets),
    );
    assert.ok(a[0]!.packets.length >= 75, `${a[0]!.packets.length} video packets for 3 s`);
  });

  it('fMP4 segments: the init section and the covering segments, cut from the keyframe at 4 s', async () => {
    const fmp4 = await makeHlsFmp4({ seconds: 10, segmentSeconds: 2 });
    origin.serveDir('/clip-fmp4/', fmp4.dir);
    origin.reset();
    const job = await clip({ url: `${origin.url}/clip-fmp4/index.m3u8`, start: 5.02, end: 7.98 });
    assert.equal(origin.countRequests(/^\/clip-fmp4\/seg_\d+\.m4s$/), 1 + 2);
    const file = job.result!.output_path;
    // 2.96 s shown; the frames from the keyframe at 4 s to 5.02 s kept for decoding, hidden by the edit list.
    assert.ok(Math.abs((await durationOf(file)) - 2.96) < 0.05, `${await durationOf(file)} s`);
    const [video] = await streamFacts(file);
    assert.equal(video!.keyframes?.[0], 1, 'the first frame is a keyframe');
    assert.ok(
      Math.abs(video!.packets.length - 100) <= 1,
      `${video!.packets.length} video packets from 4 s to 7.98 s`,
    );
  });
});

describe('a clip resumed after a restart', () => {
  it('plans the same window again and keeps the segments already on disk', async () => {
    const url = `${origin.url}/clip/muxed/index.m3u8`;
    // One segment at a time, each taking a few hundred ms: a checkpoint after every one.
    origin.addFault({ match: /^\/clip\/muxed\/seg_/, throttleBytesPerSec: 60_000 });
    let own = await startTestService({ max_jobs_per_ip: 0, use_multithreading: false });
    // From the first segment: no probe request to tell apart from the download's.
    const body = { url, start: 0.5, end: 10.22 };
    const res = await own.app.inject({ method: 'POST', url: '/download/', payload: body });
    const id = res.json().job_id as string;
    await own.waitFor(id, (j) => j.downloaded_segments >= 4);
    own = await own.restart();
    origin.reset();
    const job = await own.waitFor(id, ['COMPLETED', 'FAILED']);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.attempts, 2);
    // Segment 0, the window's first, was in the checkpoint: not fetched again.
    assert.equal(origin.countRequests('/clip/muxed/seg_000.ts'), 0);
    assert.ok(segmentsServed('muxed') < 11, `${segmentsServed('muxed')} segments fetched after the restart`);
    assert.deepEqual(job.result?.clip, { start: 0.5, end: 10.22 });
    await assertSameClip(job.result!.output_path, await reference(url, ['muxed'], 0, 0.5, 10.22));
  });
});

describe('a clip of a playlist with subtitles', () => {
  it('cuts the subtitles with the video: the cues it shows, timed from its start, in the MP4 and beside it', async () => {
    const fx = await makeHlsSubtitles();
    origin.serveDir('/clip-subs/', fx.dir);
    origin.reset();
    const job = await clip({ url: `${origin.url}/clip-subs/${fx.masterName}`, start: 4.2, end: 7.5 });
    const streams = await streamsOf(job.result!.output_path);
    assert.deepEqual(
      streams.map((s) => s.codec_type),
      ['video', 'audio', 'subtitle', 'subtitle'],
    );
    // Cues on the full file's timeline sit at source + videoOffset (hls-extras.test.ts); the clip's
    // time 0 is 4.2 there. "Over three segments" began at 3.95, in a segment before the window: the
    // English segments carry a cue only where it starts (ffmpeg's segmenter), the French repeat it.
    const at = (t: number) => Math.round((t + fx.videoOffset - 4.2) * 1000) / 1000;
    const expected = [
      { cue: 3, start: 0, end: at(6.1) },
      { cue: 4, start: at(7.0), end: 3.3 },
    ];
    await assertSubtitleCues(fx, job.result!, expected);
    assert.match(await readFile(job.result!.subtitles![1]!.path, 'utf8'), /STYLE/, 'the sidecar keeps STYLE');
    // Segments [2, 4) of 4 cover the window, plus the one before it, in each language.
    assert.equal(origin.countRequests(/^\/clip-subs\/.*\.vtt$/), 2 * 3);
  });
});

describe('clips that cannot be made fail before fetching media', () => {
  it('a start beyond the end of the media fails with VALIDATION, no segment fetched', async () => {
    origin.reset();
    const job = await submit({ url: `${origin.url}/clip/muxed/index.m3u8`, start: 30 });
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_VALIDATION');
    assert.match(job.error ?? '', /beyond the end of the media/);
    assert.equal(segmentsServed('muxed'), 0);
  });

  it('a live playlist with start fails with VALIDATION before recording', async () => {
    origin.reset();
    const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:1', '#EXT-X-MEDIA-SEQUENCE:0'];
    for (let i = 0; i < 6; i++) lines.push('#EXTINF:1.000000,', `muxed/seg_${String(i).padStart(3, '0')}.ts`);
    origin.route('/clip/live.m3u8', { body: `${lines.join('\n')}\n` });
    const job = await submit({ url: `${origin.url}/clip/live.m3u8`, start: 2 });
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_VALIDATION');
    assert.match(job.error ?? '', /start\/end apply to VOD; use max_duration for live/);
    assert.equal(segmentsServed('muxed'), 0);
  });
});

describe('gabe download and gabe submit take --start/--end and the skip flags', () => {
  it('gabe download --start 10 --end 0:20 makes the clip the API makes', async () => {
    const url = `${origin.url}/clip/muxed/index.m3u8`;
    const out = path.join(tempDir(), 'cli-clip.mp4');
    const run = gabe(['download', url, '-o', out, '--start', '10', '--end', '0:20']);
    assert.equal(await run.exit, 0, run.output());
    const job = await clip({ url, start: 10, end: 20 });
    const [a, b] = [await streamFacts(out), await streamFacts(job.result!.output_path)];
    assert.deepEqual(
      a.map((s) => s.packets),
      b.map((s) => s.packets),
    );
    assert.ok(a[0]!.packets.length >= 250, `${a[0]!.packets.length} video packets for 10 s`);
  });

  it('gabe download refuses an invalid --skip-segments pattern by name', async () => {
    const run = gabe(['download', `${origin.url}/clip/muxed/index.m3u8`, '--skip-segments', '(ads']);
    assert.notEqual(await run.exit, 0);
    assert.match(run.stderr(), /skip-segments/);
  });

  it('gabe submit sends start, end, skip_segments and skip_discontinuity_runs', async () => {
    const api = await startTestService({ max_jobs_per_ip: 0 }, { listen: true });
    const url = `${origin.url}/clip/muxed/index.m3u8`;
    const args = ['submit', url, '--start', '00:00:02.5', '--end', '6', '--follow', '--json'];
    args.push('--skip-segments', 'seg_004', '--skip-segments', '/ads/', '--skip-discontinuity-runs', '3');
    const run = gabe(args, { GABE_SERVER: api.url });
    assert.equal(await run.exit, 0, run.output());
    const job = JSON.parse(run.stdout()) as { status: string; job_id: string; result: Job['result'] };
    assert.equal(job.status, 'COMPLETED');
    const stored = api.store.get(job.job_id)!;
    assert.equal(stored.request.start, '00:00:02.5');
    assert.equal(stored.request.end, '6');
    assert.deepEqual(stored.request.skip_segments, ['seg_004', '/ads/']);
    assert.equal(stored.request.skip_discontinuity_runs, 3);
    assert.deepEqual(job.result?.clip, { start: 2.5, end: 6 });
    assert.deepEqual(job.result?.skipped, { segments: 1, seconds: 1 });
  });
});
