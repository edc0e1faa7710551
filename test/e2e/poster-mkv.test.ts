/**
 * The poster frame (`thumbnail: true`) and Matroska output (`container: "mkv"`): what ffmpeg makes
 * of a finished MP4, checked with ffprobe and against `ffmpeg -c copy` of the same source, through
 * the service's routes (GET /job/{id}/thumbnail and /file, DELETE).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { gabe } from '../helpers/cli.js';
import { ffmpegCopy, framemd5 } from '../helpers/differential.js';
import { makeHlsSeparateAudio, makeHlsTs, makeMp4, makeTempDir, runFfprobe } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { makeHlsSubtitles } from '../helpers/subtitles.js';

let origin: Origin;
let svc: TestService;
let client = 0;
let served = 0;

before(async () => {
  origin = await startOrigin();
  svc = await startTestService({ max_jobs_per_ip: 0 });
});
after(async () => {
  await closeAllServices();
  await origin.close();
});

interface Probed {
  format: { format_name: string; tags?: Record<string, string> };
  streams: {
    codec_type: string;
    codec_name: string;
    width?: number;
    height?: number;
    tags?: Record<string, string>;
  }[];
}

async function probe(file: string): Promise<Probed> {
  return JSON.parse(
    (await runFfprobe(['-show_format', '-show_streams', '-of', 'json', file])).toString(),
  ) as Probed;
}

/** A tag whatever its case: Matroska's are upper case (COMMENT), MP4's lower. */
function tag(tags: Record<string, string> | undefined, name: string): string | undefined {
  return Object.entries(tags ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];
}

async function submit(route: string, body: Record<string, unknown>): Promise<Job> {
  const res = await svc.app.inject({
    method: 'POST',
    url: route,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
    remoteAddress: `10.11.0.${++client}`,
  });
  assert.equal(res.statusCode, 200, res.body);
  const job = await svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
  return job;
}

function serve(dir: string, file: string): string {
  const prefix = `/p${served++}/`;
  origin.serveDir(prefix, dir);
  return `${origin.url}${prefix}${file}`;
}

/** Every packet's stream, size and MD5, whatever the container's timestamps' time base. */
async function packets(file: string): Promise<string[]> {
  return (await framemd5(file)).map((l) => {
    const f = l.split(',').map((x) => x.trim());
    return `${f[0]},${f[4]},${f[5]}`;
  });
}

describe('poster frame', () => {
  it('an HLS job with thumbnail: true has <name>.jpg beside its file, a JPEG of the video size, served and deleted with the job', async () => {
    const ts = await makeHlsTs({ seconds: 4 });
    const job = await submit('/download/', {
      url: serve(ts.dir, ts.playlistName),
      video_name: 'poster one',
      thumbnail: true,
    });
    const r = job.result!;
    assert.equal(r.thumbnail_path, path.join(path.dirname(r.output_path), 'poster one.jpg'));
    const jpg = await probe(r.thumbnail_path!);
    assert.equal(jpg.streams[0]?.codec_name, 'mjpeg');
    assert.deepEqual([jpg.streams[0]?.width, jpg.streams[0]?.height], [320, 180]);
    const res = await svc.app.inject({ url: `/job/${job.id}/thumbnail`, remoteAddress: '10.11.1.1' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'image/jpeg');
    assert.deepEqual(res.rawPayload, readFileSync(r.thumbnail_path!));
    const del = await svc.app.inject({ method: 'DELETE', url: `/job/${job.id}`, remoteAddress: '10.11.1.1' });
    assert.ok(del.statusCode < 300, del.body);
    assert.equal(existsSync(r.thumbnail_path!), false, 'the poster goes with the job');
    assert.equal(existsSync(r.output_path), false);
  });

  it('an MP4 job of a 1280x720 file gets a poster scaled to 640x360', async () => {
    const mp4 = await makeMp4({ seconds: 2, width: 1280, height: 720 });
    const job = await submit('/download/mp4', { url: serve(mp4.dir, mp4.name), thumbnail: true });
    const jpg = await probe(job.result!.thumbnail_path!);
    assert.deepEqual([jpg.streams[0]?.width, jpg.streams[0]?.height], [640, 360]);
  });

  it('a job without thumbnail has no poster: no thumbnail_path, and the route answers 404', async () => {
    const ts = await makeHlsTs({ seconds: 4 });
    const job = await submit('/download/', { url: serve(ts.dir, ts.playlistName) });
    assert.equal(job.result!.thumbnail_path, undefined);
    const res = await svc.app.inject({ url: `/job/${job.id}/thumbnail`, remoteAddress: '10.11.1.1' });
    assert.equal(res.statusCode, 404);
  });

  it('audio_only with thumbnail: true completes without a poster and says why', async () => {
    const fx = await makeHlsSeparateAudio({ seconds: 4 });
    const job = await submit('/download/', {
      url: serve(fx.dir, fx.masterName),
      audio_only: true,
      thumbnail: true,
    });
    assert.equal(job.result!.thumbnail_path, undefined);
    assert.ok(
      job.result!.warnings?.some((w) => /no poster frame/.test(w)),
      JSON.stringify(job.result!.warnings),
    );
  });
});

describe('poster frame route with API keys', () => {
  it("answers another key's request for a job's poster with 404, as /file does", async () => {
    const alice = 'a'.repeat(24);
    const bob = 'b'.repeat(24);
    const keyed = await startTestService({ api_keys: [alice, bob], max_jobs_per_ip: 0 });
    const mp4 = await makeMp4({ seconds: 2 });
    const res = await keyed.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
      payload: JSON.stringify({ url: serve(mp4.dir, mp4.name), thumbnail: true }),
    });
    const job = await keyed.waitFor(res.json().job_id, ['COMPLETED', 'FAILED']);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const as = (key: string) =>
      keyed.app.inject({ url: `/job/${job.id}/thumbnail`, headers: { authorization: `Bearer ${key}` } });
    assert.equal((await as(alice)).statusCode, 200);
    const other = await as(bob);
    assert.equal(other.statusCode, 404);
    assert.equal(other.json().code, 'GABE_ERR_JOB_NOT_FOUND');
    assert.equal((await keyed.app.inject({ url: `/job/${job.id}/thumbnail` })).statusCode, 401);
  });
});

describe('gabe download --thumbnail --container mkv', () => {
  it('writes <name>.mkv with its tags and <name>.jpg beside it', async () => {
    const ts = await makeHlsTs({ seconds: 4 });
    const out = path.join(await makeTempDir('cli-mkv'), 'from cli.mkv');
    const run = gabe([
      'download',
      serve(ts.dir, ts.playlistName),
      '-o',
      out,
      '--thumbnail',
      '--container',
      'mkv',
    ]);
    assert.equal(await run.exit, 0, run.output());
    assert.equal(run.stdout().trim(), out);
    const p = await probe(out);
    assert.equal(p.format.format_name, 'matroska,webm');
    assert.equal(tag(p.format.tags, 'title'), 'from cli');
    assert.equal((await probe(out.replace(/\.mkv$/, '.jpg'))).streams[0]?.codec_name, 'mjpeg');
    assert.match(run.stderr(), /poster: .*from cli\.jpg/);
    const bad = gabe(['download', serve(ts.dir, ts.playlistName), '--container', 'avi']);
    assert.notEqual(await bad.exit, 0);
    assert.match(bad.stderr(), /mp4 or mkv/);
  });
});

describe('container: "mkv"', () => {
  it('an HLS job makes a Matroska file with the same packets as ffmpeg -c copy, its tags, served as video/x-matroska', async () => {
    const ts = await makeHlsTs({ seconds: 4 });
    const url = serve(ts.dir, ts.playlistName);
    const job = await submit('/download/', { url, video_name: 'as mkv', container: 'mkv' });
    const r = job.result!;
    assert.equal(r.container, 'mkv');
    assert.equal(path.basename(r.output_path), 'as mkv.mkv');
    assert.equal(r.video_name, 'as mkv');
    const p = await probe(r.output_path);
    assert.equal(p.format.format_name, 'matroska,webm');
    assert.equal(tag(p.format.tags, 'title'), 'as mkv');
    assert.equal(tag(p.format.tags, 'comment'), url);
    const ref = await ffmpegCopy(url, path.join(await makeTempDir('mkv-ref'), 'ref.mp4'));
    assert.deepEqual(await packets(r.output_path), await packets(ref));
    const res = await svc.app.inject({ url: `/job/${job.id}/file`, remoteAddress: '10.11.1.1' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'video/x-matroska');
    assert.match(String(res.headers['content-disposition']), /as%20mkv\.mkv/);
  });

  it('subtitles become SubRip tracks keeping their languages', async () => {
    const fx = await makeHlsSubtitles();
    const job = await submit('/download/', { url: serve(fx.dir, fx.masterName), container: 'mkv' });
    const subs = (await probe(job.result!.output_path)).streams.filter((s) => s.codec_type === 'subtitle');
    assert.deepEqual(
      subs.map((s) => [s.codec_name, tag(s.tags, 'language')]),
      [
        ['subrip', 'eng'],
        ['subrip', 'fra'],
      ],
    );
  });

  it('an MP4 job as mkv keeps every packet of the source and gets the tags', async () => {
    const mp4 = await makeMp4({ seconds: 3 });
    const job = await submit('/download/mp4', {
      url: serve(mp4.dir, mp4.name),
      video_name: 'mp4 as mkv',
      container: 'mkv',
    });
    const r = job.result!;
    assert.equal(path.extname(r.output_path), '.mkv');
    const p = await probe(r.output_path);
    assert.equal(p.format.format_name, 'matroska,webm');
    assert.equal(tag(p.format.tags, 'title'), 'mp4 as mkv');
    assert.deepEqual(await packets(r.output_path), await packets(mp4.file));
  });

  it('audio_only as mkv is a .mka with the rendition language, served as audio/x-matroska', async () => {
    const fx = await makeHlsSeparateAudio({ seconds: 4 });
    const job = await submit('/download/', {
      url: serve(fx.dir, fx.masterName),
      audio_only: true,
      audio_language: 'fr',
      container: 'mkv',
    });
    const r = job.result!;
    assert.equal(r.container, 'mka');
    assert.equal(path.extname(r.output_path), '.mka');
    const p = await probe(r.output_path);
    assert.deepEqual(
      p.streams.map((s) => [s.codec_type, tag(s.tags, 'language')]),
      [['audio', 'fra']],
    );
    const res = await svc.app.inject({ url: `/job/${job.id}/file`, remoteAddress: '10.11.1.1' });
    assert.equal(res.headers['content-type'], 'audio/x-matroska');
  });
});
