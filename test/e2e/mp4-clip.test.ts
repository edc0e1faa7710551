import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job, JobResult } from '../../src/jobs/types.js';
import { mp4Downloader } from '../../src/pipeline/mp4/job.js';
import { ProgressTracker } from '../../src/pipeline/progress.js';
import { loadConfig } from '../../src/service/config.js';
import { createLogger, LOG_FILE_NAME } from '../../src/service/log.js';
import { readSavedRanges } from '../helpers/checkpoint.js';
import { gabe } from '../helpers/cli.js';
import { assertSameMedia } from '../helpers/differential.js';
import { decodedHash, durationOf, makeTempDir, runFfmpeg } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService, testFfmpeg } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

/** Low-resolution test media, a keyframe every 2 s, a 440 Hz tone. */
const SOURCE = [
  ...['-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=25'],
  ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
];
const VIDEO = (preset: string, bframes: number) => [
  ...['-c:v', 'libx264', '-preset', preset, '-bf', String(bframes), '-pix_fmt', 'yuv420p'],
  ...['-g', '50', '-keyint_min', '50', '-sc_threshold', '0', '-b:v', '150k'],
];
const AUDIO = ['-c:a', 'aac', '-b:a', '48k', '-ac', '2'];

interface Source {
  file: string;
  size: number;
}

async function make(dir: string, name: string, args: string[]): Promise<Source> {
  const file = path.join(dir, name);
  await runFfmpeg([...args, file]);
  return { file, size: (await stat(file)).size };
}

/** Where the file's top-level boxes start. */
function topLevelOffsets(file: string): number[] {
  const b = readFileSync(file);
  const out: number[] = [];
  for (let at = 0; at + 8 <= b.length; ) {
    out.push(at);
    const size = b.readUInt32BE(at);
    at += size === 1 ? Number(b.readBigUInt64BE(at + 8)) : size;
  }
  return out;
}

/** `ffmpeg -ss start [-to end] -i <the whole file> -c copy`: what a clip must equal. */
async function reference(
  file: string,
  start: number,
  end: number | null,
  map = ['-map', '0'],
): Promise<string> {
  const out = path.join(tempDir(), 'ref.mp4');
  const to = end === null ? [] : ['-to', String(end)];
  await runFfmpeg([
    ...['-ss', String(start), ...to, '-i', file],
    ...[...map, '-c', 'copy', '-map_metadata', '0', '-movflags', '+faststart', out],
  ]);
  return out;
}

/** The clip holds exactly the reference's packets, decoded frames and decoded samples. */
async function assertSameClip(mine: string, ref: string, video = true): Promise<void> {
  await assertSameMedia(mine, ref);
  if (video) assert.equal(await decodedHash(mine, 'v'), await decodedHash(ref, 'v'), 'decoded frames');
  assert.equal(await decodedHash(mine, 'a'), await decodedHash(ref, 'a'), 'decoded samples');
}

describe('MP4 clips by time (POST /download/mp4 with start/end)', () => {
  let origin: Origin;
  let svc: TestService;
  /** 120 s, moov first, no B-frames. */
  let front: Source;
  /** 90 s, moov at the end, B-frames (ctts and an edit list). */
  let tail: Source;
  /** 60 s of AAC alone at 128 kb/s, moov at the end. */
  let audio: Source;
  /** 30 s, fragmented (empty moov, moof/mdat pairs). */
  let fragmented: Source;
  /** 30 s of `front` in a MOV with a timecode track, which an MP4 cannot carry. */
  let timecode: Source;
  let ip = 0;

  before(async () => {
    const dir = await makeTempDir('mp4-clip');
    [front, tail, audio, fragmented] = await Promise.all([
      make(dir, 'front.mp4', [
        ...SOURCE,
        '-t',
        '120',
        ...VIDEO('ultrafast', 0),
        ...AUDIO,
        '-movflags',
        '+faststart',
      ]),
      make(dir, 'tail.mp4', [...SOURCE, '-t', '90', ...VIDEO('veryfast', 2), ...AUDIO]),
      make(dir, 'audio.m4a', [...SOURCE.slice(4), '-t', '60', ...AUDIO, '-b:a', '128k']),
      make(dir, 'frag.mp4', [
        ...[...SOURCE, '-t', '30', ...VIDEO('ultrafast', 0), ...AUDIO],
        ...['-movflags', 'frag_keyframe+empty_moov'],
      ]),
    ]);
    // A camera's kind of file: a QuickTime timecode track (tmcd) beside video and audio.
    timecode = await make(dir, 'timecode.mov', [
      '-i',
      front.file,
      '-t',
      '30',
      '-map',
      '0',
      '-c',
      'copy',
      '-timecode',
      '01:00:00:00',
    ]);
    origin = await startOrigin();
    origin.addFile('/timecode.mov', timecode.file);
    origin.addFile('/front.mp4', front.file);
    origin.addFile('/tail.mp4', tail.file);
    origin.addFile('/audio.m4a', audio.file);
    origin.addFile('/frag.mp4', fragmented.file);
    svc = await startTestService({ max_retries: 2 }, { listen: true });
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  /** Bytes the origin was asked for at `pathname` (Range lengths, or the whole file): an upper bound. */
  function bytesAsked(pathname: string, size: number): number {
    let n = 0;
    for (const r of origin.requests.filter((q) => q.path === pathname)) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(String(r.headers['range'] ?? ''));
      if (!m) n += size;
      else n += Math.min(size - 1, m[2] === '' ? size - 1 : Number(m[2])) - Number(m[1]) + 1;
    }
    return n;
  }

  async function clip(pathname: string, fields: Record<string, unknown>): Promise<Job> {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}${pathname}`, ...fields }),
      remoteAddress: `10.2.0.${++ip}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED'], 120_000);
  }

  /** The service log's lines about one job. */
  const logOf = (job: Job): string =>
    readFileSync(path.join(svc.config.log_path, LOG_FILE_NAME), 'utf8')
      .split('\n')
      .filter((l) => l.includes(job.id))
      .join('\n');

  const completed = (job: Job): string => {
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    return job.result!.output_path;
  };

  it('fetches under a quarter of a 120 s file (moov first) for a 10 s clip, equal to ffmpeg on the whole file', async () => {
    const job = await clip('/front.mp4', { start: 30, end: 40 });
    const out = completed(job);
    const ref = await reference(front.file, 30, 40);
    await assertSameClip(out, ref);
    const asked = bytesAsked('/front.mp4', front.size);
    assert.ok(asked < 0.25 * front.size, `asked for ${asked} of ${front.size} bytes`);
    assert.deepEqual(job.result!.clip, { start: 30, end: 40 });
    const shown = await svc.app.inject({ method: 'GET', url: `/job/${job.id}`, remoteAddress: '10.2.1.1' });
    assert.deepEqual(shown.json().result.clip, { start: 30, end: 40 }, 'the API shows result.clip');
    assert.ok(Math.abs(job.result!.duration_seconds! - (await durationOf(ref))) < 0.05, 'duration');
    assert.ok(job.total_bytes! < 0.25 * front.size, 'total_bytes is what the clip fetches');
    assert.equal(job.downloaded_bytes, job.total_bytes);
  });

  it('reads the moov at the end of a file with B-frames, and takes [HH:]MM:SS times', async () => {
    const job = await clip('/tail.mp4', { start: '0:31.300', end: '00:00:41.7' });
    const out = completed(job);
    await assertSameClip(out, await reference(tail.file, 31.3, 41.7));
    const asked = bytesAsked('/tail.mp4', tail.size);
    assert.ok(asked < 0.3 * tail.size, `asked for ${asked} of ${tail.size} bytes`);
    assert.deepEqual(job.result!.clip, { start: 31.3, end: 41.7 });
  });

  it('retries a 503 and a body cut short while reading the head and the moov, and stays sparse', async () => {
    const moovAt = topLevelOffsets(tail.file).at(-1)!;
    origin.addFault({ match: '/tail.mp4', status: 503, times: 1 });
    const head = origin.addFault({ match: '/tail.mp4', skip: 1, truncate: { fraction: 0.5 }, times: 1 });
    const moov = origin.addFault({
      match: (r) => String(r.headers['range']).startsWith(`bytes=${moovAt}-`),
      truncate: { fraction: 0.5 },
      times: 1,
    });
    const job = await clip('/tail.mp4', { start: 60, end: 70 });
    await assertSameClip(completed(job), await reference(tail.file, 60, 70));
    assert.equal(head.hits + moov.hits, 2);
    // The retried head and moov count twice.
    const asked = bytesAsked('/tail.mp4', tail.size);
    assert.ok(asked < 0.4 * tail.size, `asked for ${asked} of ${tail.size} bytes`);
  });

  it('clips from the beginning when only end is given', async () => {
    const job = await clip('/tail.mp4', { end: 12 });
    await assertSameClip(completed(job), await reference(tail.file, 0, 12));
    assert.deepEqual(job.result!.clip, { start: 0, end: 12 });
    assert.ok(bytesAsked('/tail.mp4', tail.size) < 0.3 * tail.size);
  });

  it('clips to the end of the media when only start is given', async () => {
    const job = await clip('/front.mp4', { start: 100 });
    await assertSameClip(completed(job), await reference(front.file, 100, null));
    assert.deepEqual(job.result!.clip, { start: 100, end: null });
    assert.ok(bytesAsked('/front.mp4', front.size) < 0.3 * front.size);
  });

  it('clips an audio-only file from its sample table', async () => {
    const job = await clip('/audio.m4a', { start: 20, end: 30 });
    await assertSameClip(completed(job), await reference(audio.file, 20, 30), false);
    const asked = bytesAsked('/audio.m4a', audio.size);
    assert.ok(asked < 0.6 * audio.size, `asked for ${asked} of ${audio.size} bytes`);
  });

  it('keeps video and audio when a stream cannot go into an MP4 (a MOV timecode track)', async () => {
    const job = await clip('/timecode.mov', { start: 10, end: 20 });
    const ref = await reference(timecode.file, 10, 20, ['-map', '0:v?', '-map', '0:a?']);
    await assertSameClip(completed(job), ref);
    // 16 s of 30 (a keyframe back, 2 s each side) and the first second.
    assert.ok(bytesAsked('/timecode.mov', timecode.size) < 0.75 * timecode.size);
    assert.match(job.result!.warnings?.join() ?? '', /keeps only the video and audio/);
  });

  it('fails with VALIDATION when start is beyond the duration, having fetched little', async () => {
    const job = await clip('/front.mp4', { start: 500 });
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_VALIDATION');
    assert.match(job.error ?? '', /beyond the end of the media/);
    assert.ok(bytesAsked('/front.mp4', front.size) < 0.1 * front.size, 'only the head and the moov');
  });

  it('fails with VALIDATION when start is beyond the duration of a file fetched whole', async () => {
    origin.setOptions({ ranges: false });
    const job = await clip('/tail.mp4', { start: 95 });
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_VALIDATION');
    assert.match(job.error ?? '', /beyond the end of the media/);
  });

  it('cuts the clip from the whole file when the origin ignores Range', async () => {
    origin.setOptions({ ranges: false });
    const job = await clip('/tail.mp4', { start: 20, end: 30 });
    await assertSameClip(completed(job), await reference(tail.file, 20, 30));
    assert.match(logOf(job), /the origin does not answer byte ranges/);
    assert.deepEqual(job.result!.clip, { start: 20, end: 30 });
  });

  it('cuts the clip from the whole file when a sample range comes back as a 200 (the file changed)', async () => {
    const walk = new Set(topLevelOffsets(tail.file).map((at) => `bytes=${at}-`));
    const sampleRange = (r: { path: string; headers: Record<string, unknown> }) => {
      const range = String(r.headers['range'] ?? '');
      return r.path === '/tail.mp4' && range !== '' && ![...walk].some((w) => range.startsWith(w));
    };
    const fault = origin.addFault({ match: sampleRange, ignoreRange: true, times: 1 });
    const job = await clip('/tail.mp4', { start: 20, end: 30 });
    await assertSameClip(completed(job), await reference(tail.file, 20, 30));
    assert.equal(fault.hits, 1);
    const ranges = origin.requests.filter((r) => r.path === '/tail.mp4').map((r) => r.headers['range']);
    assert.ok(ranges.includes('bytes=0-'), `then the whole file: ${ranges.join(', ')}`);
    assert.match(logOf(job), /the file changed on the server; downloading it whole/);
  });

  it('cuts the clip from the whole file when the MP4 is fragmented', async () => {
    const job = await clip('/frag.mp4', { start: 10, end: 20 });
    await assertSameClip(completed(job), await reference(fragmented.file, 10, 20));
    assert.match(logOf(job), /a fragmented MP4/);
    const ranged = origin.requests.filter((r) => r.path === '/frag.mp4' && r.headers['range']);
    assert.ok(
      ranged.some((r) => r.headers['range'] === 'bytes=0-'),
      'then the whole-file download',
    );
  });

  it('resumes an interrupted clip from its checkpoint, asking only for the missing bytes', async () => {
    const dir = tempDir('gabe-clip-resume-');
    const config = loadConfig({
      file: path.join(dir, 'config.json'),
      env: {},
      overrides: {
        allow_private_networks: true,
        temp_path: path.join(dir, 'temp'),
        output_path: path.join(dir, 'out'),
        chunk_size: 16 * 1024,
        mp4_connections: 2,
        mp4_connections_max: 2,
      },
    });
    const id = randomUUID();
    const work = path.join(config.temp_path, id);
    mkdirSync(work, { recursive: true });
    const run = async (signal: AbortSignal): Promise<JobResult> => {
      const now = new Date().toISOString();
      const request = { url: `${origin.url}/tail.mp4`, start: 40, end: 50 };
      const job: Job = {
        ...{ id, seq: 1, type: 'mp4', status: 'PROCESSING', client_ip: 'test', owner: null },
        ...{ request, video_name: 'resumed', created_at: now, started_at: now, completed_at: null },
        ...{ updated_at: now, result: null, error: null, error_code: null, attempts: 1, progress: 0 },
        ...{ total_segments: 0, downloaded_segments: 0, downloaded_bytes: 0, total_bytes: null },
        ...{ speed_bps: 0, eta_seconds: null, recorded_seconds: null },
      };
      const progress = new ProgressTracker();
      const ffmpeg = await testFfmpeg();
      const log = createLogger({ stdout: false });
      return mp4Downloader.run({
        job,
        config,
        ffmpeg,
        log,
        signal,
        tempDir: work,
        progress,
        reportProgress: () => {},
      });
    };
    const checkpoint = path.join(work, 'clip-source.part.json');
    // Some piece part-way: bytes on disk that the checkpoint claims, and bytes still to come.
    const partial = () =>
      readSavedRanges(checkpoint)?.pieces.some(([s, e, d]) => d > 0 && s + d < e) ?? false;
    origin.addFault({ match: '/tail.mp4', throttleBytesPerSec: 100_000 });
    const stop = new AbortController();
    const first = run(stop.signal);
    while (!partial()) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await assert.rejects(first, { code: 'GABE_ERR_CANCELLED' });
    const missing = readSavedRanges(checkpoint)!
      .pieces.filter(([s, e, d]) => s + d < e)
      .map(([s, e, d]) => [s + d, e] as const);
    origin.reset();
    const result = await run(new AbortController().signal);
    await assertSameClip(result.output_path, await reference(tail.file, 40, 50));
    // Besides the head and the box walk (at top-level box offsets), only missing bytes were asked for.
    const walk = new Set(topLevelOffsets(tail.file));
    const pieces = origin.requests
      .map((r) => /^bytes=(\d+)-(\d+)$/.exec(String(r.headers['range'])))
      .map((m) => [Number(m![1]), Number(m![2]) + 1] as const)
      .filter(([s]) => !walk.has(s));
    assert.ok(pieces.length > 0, 'the missing bytes were fetched');
    assert.ok(!existsSync(checkpoint), 'the checkpoint goes once the ranges are in');
    for (const [s, e] of pieces) {
      assert.ok(
        missing.some(([ms, me]) => s >= ms && e <= me),
        `bytes ${s}-${e} are inside the missing ${JSON.stringify(missing)}`,
      );
    }
  });

  it('gabe download <mp4 url> --start 10 --end 20 writes the clip', async () => {
    const out = path.join(tempDir(), 'clip.mp4');
    const run = gabe(['download', `${origin.url}/front.mp4`, '-o', out, '--start', '10', '--end', '20']);
    assert.equal(await run.exit, 0, run.output());
    assert.equal(run.stdout().trim(), out);
    await assertSameClip(out, await reference(front.file, 10, 20));
    assert.ok(bytesAsked('/front.mp4', front.size) < 0.25 * front.size);
  });

  it('gabe submit --mp4 --start 50 --end 1:00 asks the service for the clip', async () => {
    const run = gabe(
      ['submit', `${origin.url}/front.mp4`, '--mp4', '--start', '50', '--end', '1:00', '--follow', '--json'],
      {
        GABE_SERVER: svc.url,
      },
    );
    assert.equal(await run.exit, 0, run.output());
    const job = JSON.parse(run.stdout()) as { result: { output_path: string; clip: unknown } };
    assert.deepEqual(job.result.clip, { start: 50, end: 60 });
    await assertSameClip(job.result.output_path, await reference(front.file, 50, 60));
  });
});
