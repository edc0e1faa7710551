/**
 * Title, source and languages written into the files Gabe makes: HLS jobs through the in-process
 * remux and through ffmpeg, MP4 jobs kept as downloaded (tags edited into their moov) and remuxed;
 * each file compared with `ffmpeg -c copy` of the same source for packets and seek points.
 */
import assert from 'node:assert/strict';
import { copyFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { writeFileTags } from '../../src/pipeline/mp4/file-tags.js';
import { assertSameMedia, ffmpegCopy } from '../helpers/differential.js';
import {
  makeHlsDiscontinuity,
  makeHlsSeparateAudio,
  makeHlsTs,
  makeMp4,
  makeTempDir,
  runFfmpeg,
  runFfprobe,
} from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { makeRenditions } from '../helpers/renditions.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

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
  streams: { codec_type: string; tags?: Record<string, string> }[];
}

export async function probe(file: string): Promise<Probed> {
  const out = await runFfprobe(['-show_format', '-show_streams', '-of', 'json', file]);
  return JSON.parse(out.toString()) as Probed;
}

export async function submit(
  route: string,
  body: Record<string, unknown>,
  service: TestService = svc,
): Promise<Job> {
  const res = await service.app.inject({
    method: 'POST',
    url: route,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
    remoteAddress: `10.9.0.${++client}`,
  });
  assert.equal(res.statusCode, 200, res.body);
  const job = await service.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
  return job;
}

function serve(dir: string, file: string, credentials = ''): string {
  const prefix = `/m${served++}/`;
  origin.serveDir(prefix, dir);
  return `${origin.url.replace('://', `://${credentials}`)}${prefix}${file}`;
}

async function writtenByFfmpeg(file: string): Promise<boolean> {
  return /Lavf/.test((await probe(file)).format.tags?.encoder ?? '');
}

describe('an HLS job writes the title, the source URL and the audio language into its MP4', () => {
  it('MPEG-TS through the in-process remux: title and comment (credentials masked), packets unchanged', async () => {
    const ts = await makeHlsTs({ seconds: 4 });
    const url = serve(ts.dir, ts.playlistName, 'alice:s3cret@');
    const job = await submit('/download/', { url, video_name: 'My clip é' });
    const file = job.result!.output_path;
    assert.equal(await writtenByFfmpeg(file), false, 'the in-process remux made it');
    const p = await probe(file);
    assert.equal(p.format.tags?.title, 'My clip é');
    assert.equal(p.format.tags?.comment, url.replace('alice:s3cret@', '***:***@'));
    assert.ok(!JSON.stringify(p).includes('s3cret'), 'no password in the file');
    const plain = url.replace('alice:s3cret@', '');
    await assertSameMedia(file, await ffmpegCopy(plain, path.join(await makeTempDir('meta-ref'), 'ref.mp4')));
  });

  it('a separate audio rendition with LANGUAGE="fr" (in-process remux) is tagged fra', async () => {
    const fx = await makeHlsSeparateAudio({ seconds: 4 });
    const url = serve(fx.dir, fx.masterName);
    const job = await submit('/download/', { url, audio_language: 'fr', video_name: 'french' });
    const file = job.result!.output_path;
    assert.equal(await writtenByFfmpeg(file), false, 'the in-process remux made it');
    const p = await probe(file);
    assert.equal(p.streams.find((s) => s.codec_type === 'audio')?.tags?.language, 'fra');
    assert.equal(p.streams.find((s) => s.codec_type === 'video')?.tags?.language, 'und');
    assert.equal(p.format.tags?.title, 'french');
    const ref = path.join(await makeTempDir('meta-ref'), 'ref.mp4');
    const base = url.slice(0, url.lastIndexOf('/') + 1);
    await runFfmpeg([
      ...['-i', `${base}${fx.video.uri}`, '-i', `${base}${fx.audio[1]!.uri}`],
      ...['-map', '0:v', '-map', '1:a', '-c', 'copy', ref],
    ]);
    await assertSameMedia(file, ref);
  });

  it('an audio_only job of the French rendition is tagged fra too', async () => {
    const fx = await makeHlsSeparateAudio({ seconds: 4 });
    const url = serve(fx.dir, fx.masterName);
    const job = await submit('/download/', { url, audio_language: 'fr', audio_only: true });
    const p = await probe(job.result!.output_path);
    assert.deepEqual(
      p.streams.map((s) => [s.codec_type, s.tags?.language]),
      [['audio', 'fra']],
    );
  });

  it('audio muxed in the variant takes the LANGUAGE of its URI-less rendition (de → deu)', async () => {
    const ts = await makeHlsTs({ seconds: 4 });
    await writeFile(
      path.join(ts.dir, 'muxed-master.m3u8'),
      [
        '#EXTM3U',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Deutsch",LANGUAGE="de",DEFAULT=YES,AUTOSELECT=YES',
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,AUDIO="a"',
        ts.playlistName,
        '',
      ].join('\n'),
    );
    const job = await submit('/download/', { url: serve(ts.dir, 'muxed-master.m3u8') });
    const p = await probe(job.result!.output_path);
    assert.equal(p.streams.find((s) => s.codec_type === 'audio')?.tags?.language, 'deu');
  });

  it('fMP4 renditions (remuxed in-process): title, comment and the rendition language eng', async () => {
    const fx = await makeRenditions({
      video: 'h264',
      videoContainer: 'fmp4',
      audio: 'fmp4',
      videoStart: 0,
      audioStart: 0,
      seconds: 4,
    });
    const url = serve(fx.dir, path.basename(fx.master));
    const job = await submit('/download/', { url, video_name: 'fmp4 renditions' });
    const file = job.result!.output_path;
    assert.equal(await writtenByFfmpeg(file), false, 'the in-process remux made it');
    const p = await probe(file);
    assert.equal(p.format.tags?.title, 'fmp4 renditions');
    assert.equal(p.format.tags?.comment, url);
    assert.equal(p.streams.find((s) => s.codec_type === 'audio')?.tags?.language, 'eng');
  });
  it('fMP4 renditions through ffmpeg (native_remux false): title, comment and the rendition language eng', async () => {
    const fx = await makeRenditions({
      video: 'h264',
      videoContainer: 'fmp4',
      audio: 'fmp4',
      videoStart: 0,
      audioStart: 0,
      seconds: 4,
    });
    const url = serve(fx.dir, path.basename(fx.master));
    const viaFfmpeg = await startTestService({ max_jobs_per_ip: 0, native_remux: false });
    const job = await submit('/download/', { url, video_name: 'via ffmpeg' }, viaFfmpeg);
    const file = job.result!.output_path;
    assert.equal(await writtenByFfmpeg(file), true, 'ffmpeg made it');
    const p = await probe(file);
    assert.equal(p.format.tags?.title, 'via ffmpeg');
    assert.equal(p.format.tags?.comment, url);
    assert.equal(p.streams.find((s) => s.codec_type === 'audio')?.tags?.language, 'eng');
  });
});

describe('the merge from the track files writes them too', () => {
  it('a playlist with a discontinuity (ffmpeg, run by run) carries title and comment', async () => {
    const fx = await makeHlsDiscontinuity();
    const url = serve(fx.dir, fx.playlistName);
    const job = await submit('/download/', { url, video_name: 'two runs' });
    const p = await probe(job.result!.output_path);
    assert.equal(p.format.tags?.title, 'two runs');
    assert.equal(p.format.tags?.comment, url);
  });
});

describe('an MP4 job writes the tags into the file it downloaded', () => {
  it('a fast-start MP4 through the service: title and masked comment, packets and seek points unchanged', async () => {
    const mp4 = await makeMp4({ seconds: 3 });
    const url = serve(mp4.dir, mp4.name, 'bob:hunter2@');
    const job = await submit('/download/mp4', { url, video_name: 'the mp4' });
    const file = job.result!.output_path;
    const p = await probe(file);
    assert.equal(p.format.tags?.title, 'the mp4');
    assert.equal(p.format.tags?.comment, url.replace('bob:hunter2@', '***:***@'));
    assert.equal(job.result!.warnings, undefined);
    assert.equal(job.result!.file_size_bytes, (await stat(file)).size);
    await assertSameMedia(file, mp4.file);
  });

  const layouts: { name: string; make: (src: string, out: string) => Promise<unknown>; done: string }[] = [
    {
      name: 'moov after the media: rewritten where it is',
      make: (src, out) => runFfmpeg(['-i', src, '-map', '0', '-c', 'copy', out]),
      done: 'rewritten',
    },
    {
      name: 'moov in front with a free box of room (-moov_size): written into it',
      make: (src, out) => runFfmpeg(['-i', src, '-map', '0', '-c', 'copy', '-moov_size', '65536', out]),
      done: 'into-free',
    },
    {
      name: 'moov in front without room: one copy with the chunk offsets moved',
      make: (src, out) => runFfmpeg(['-i', src, '-map', '0', '-c', 'copy', '-movflags', '+faststart', out]),
      done: 'copied',
    },
  ];
  for (const l of layouts) {
    it(`${l.name}; the encoder tag and the packets are kept`, async () => {
      const mp4 = await makeMp4({ seconds: 3 });
      const dir = await makeTempDir('meta-layout');
      const ref = path.join(dir, 'ref.mp4');
      await l.make(mp4.file, ref);
      const file = path.join(dir, 'tagged.mp4');
      await copyFile(ref, file);
      const tags = { title: 'Ünïcode title', comment: 'https://example.com/v.mp4' };
      assert.deepEqual(await writeFileTags(file, tags), { done: l.done });
      const p = await probe(file);
      assert.equal(p.format.tags?.title, tags.title);
      assert.equal(p.format.tags?.comment, tags.comment);
      assert.match(p.format.tags?.encoder ?? '', /Lavf/, 'the items already there stay');
      await assertSameMedia(file, ref);
      // Tagging again replaces the items rather than adding more.
      await writeFileTags(file, { title: 'second', comment: null });
      const again = await probe(file);
      assert.equal(again.format.tags?.title, 'second');
      assert.equal(again.format.tags?.comment, undefined);
      await assertSameMedia(file, ref);
    });
  }
});
