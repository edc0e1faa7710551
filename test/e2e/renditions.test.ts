/**
 * Renditions that start at different times, and playlists whose EXTINF misstate the media: jobs
 * through the service against `ffmpeg -i <the same playlist URL> -c copy`, compared for packets, seek
 * points and the A/V offset. Both remux paths are covered: the in-process one (H.264/AAC MPEG-TS, and
 * fMP4 of any codec) and ffmpeg's (TS and fMP4 mixed, HEVC in TS, packed audio with ID3 timestamps),
 * where each track is a separate input that ffmpeg would start at 0 were it not told where it starts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { assertSameMedia } from '../helpers/differential.js';
import { makeTempDir, runFfmpeg, runFfprobe } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { makeRenditions, type RenditionsOptions } from '../helpers/renditions.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

let origin: Origin;
let svc: TestService;
let served = 0;
let client = 0;

before(async () => {
  origin = await startOrigin();
  svc = await startTestService({ max_jobs_per_ip: 0 });
});
after(async () => {
  await closeAllServices();
  await origin.close();
});

async function download(url: string): Promise<Job> {
  const res = await svc.app.inject({
    method: 'POST',
    url: '/download/',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ url }),
    remoteAddress: `10.7.0.${++client}`,
  });
  assert.equal(res.statusCode, 200, res.body);
  const job = await svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
  return job;
}

/** `ffmpeg -i URL -c copy` of the playlist, video and audio. */
async function reference(url: string): Promise<string> {
  const out = path.join(await makeTempDir('renditions-ref'), 'ref.mp4');
  await runFfmpeg(['-i', url, '-map', '0:v', '-map', '0:a', '-c', 'copy', out]);
  return out;
}

function serve(dir: string, file: string): string {
  const prefix = `/r${served++}/`;
  origin.serveDir(prefix, dir);
  return `${origin.url}${prefix}${file}`;
}

/** What ffmpeg wrote the job's file with: its own muxer (Lavf tag) or the in-process remux. */
async function writtenByFfmpeg(file: string): Promise<boolean> {
  const tags = await runFfprobe(['-show_entries', 'format_tags=encoder', '-of', 'csv=p=0', file]);
  return /Lavf/.test(tags.toString());
}

describe('renditions that start at different times keep the A/V offset ffmpeg keeps', () => {
  const cases: { name: string; o: RenditionsOptions; viaFfmpeg: boolean; offset: number }[] = [
    {
      name: 'TS audio rendition starting 2 s after the TS video (in-process remux)',
      o: { video: 'h264', videoContainer: 'ts', audio: 'ts', videoStart: 0, audioStart: 2 },
      viaFfmpeg: false,
      offset: 2,
    },
    {
      name: 'TS video rendition starting 2 s after the TS audio (in-process remux)',
      o: { video: 'h264', videoContainer: 'ts', audio: 'ts', videoStart: 2, audioStart: 0 },
      viaFfmpeg: false,
      offset: -2,
    },
    {
      name: 'fMP4 video and fMP4 audio, aligned (in-process remux)',
      o: { video: 'h264', videoContainer: 'fmp4', audio: 'fmp4', videoStart: 0, audioStart: 0 },
      viaFfmpeg: false,
      offset: 0,
    },
    {
      name: 'fMP4 audio rendition starting 2 s after the fMP4 video (in-process remux)',
      o: { video: 'h264', videoContainer: 'fmp4', audio: 'fmp4', videoStart: 0, audioStart: 2 },
      viaFfmpeg: false,
      offset: 2,
    },
    {
      name: 'fMP4 video rendition starting 2 s after the fMP4 audio (in-process remux)',
      o: { video: 'h264', videoContainer: 'fmp4', audio: 'fmp4', videoStart: 2, audioStart: 0 },
      viaFfmpeg: false,
      offset: -2,
    },
    {
      name: 'HEVC fMP4 video with an fMP4 audio rendition starting 2 s later (in-process remux)',
      o: { video: 'hevc', videoContainer: 'fmp4', audio: 'fmp4', videoStart: 0, audioStart: 2 },
      viaFfmpeg: false,
      offset: 2,
    },
    {
      name: 'fMP4 video with a TS audio rendition (ffmpeg)',
      o: { video: 'h264', videoContainer: 'fmp4', audio: 'ts', videoStart: 0, audioStart: 2 },
      viaFfmpeg: true,
      offset: 3.4,
    },
    {
      name: 'HEVC video with a TS audio rendition starting 2 s later (ffmpeg)',
      o: { video: 'hevc', videoContainer: 'ts', audio: 'ts', videoStart: 0, audioStart: 2 },
      viaFfmpeg: true,
      offset: 2,
    },
    {
      name: 'packed audio placed by its ID3 timestamp, 2 s after the video (ffmpeg)',
      o: { video: 'h264', videoContainer: 'ts', audio: 'packed', videoStart: 0, audioStart: 2 },
      viaFfmpeg: true,
      offset: 2,
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const fx = await makeRenditions(c.o);
      const url = serve(fx.dir, fx.master);
      const [job, ref] = await Promise.all([download(url), reference(url)]);
      const file = job.result!.output_path;
      assert.equal(await writtenByFfmpeg(file), c.viaFfmpeg);
      const [video, audio] = await assertSameMedia(file, ref);
      const offset = audio!.start - video!.start;
      // The fixture's offset, give or take the encoders' priming and reordering delays.
      assert.ok(Math.abs(offset - c.offset) < 0.15, `audio starts ${offset.toFixed(3)} s after the video`);
    });
  }
});

describe('EXTINF durations that misstate the media', () => {
  it('completes with a warning, as ffmpeg writes the file, when every EXTINF says 6 s of 10 s segments', async () => {
    const dir = await makeTempDir('extinf');
    await runFfmpeg(
      [
        ...['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440'],
        ...['-t', '20', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-c:a', 'aac'],
        ...['-f', 'hls', '-hls_time', '10', '-hls_playlist_type', 'vod', '-hls_segment_filename', 's%03d.ts'],
        'real.m3u8',
      ],
      dir,
    );
    const segments = (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort();
    assert.equal(segments.length, 2);
    const lies = ['#EXTM3U', '#EXT-X-TARGETDURATION:6', '#EXT-X-PLAYLIST-TYPE:VOD'];
    for (const s of segments) lies.push('#EXTINF:6.0,', s);
    lies.push('#EXT-X-ENDLIST');
    await writeFile(path.join(dir, 'index.m3u8'), `${lies.join('\n')}\n`);
    const url = serve(dir, 'index.m3u8');
    const [job, ref] = await Promise.all([download(url), reference(url)]);
    await assertSameMedia(job.result!.output_path, ref);
    assert.ok(Math.abs(job.result!.duration_seconds! - 20) < 0.2, String(job.result!.duration_seconds));
    assert.deepEqual(job.result!.warnings, [
      `the file holds ${job.result!.duration_seconds!.toFixed(2)} s of media where the playlist's EXTINF durations add up to 12.00 s`,
    ]);
    const log = readFileSync(path.join(svc.config.log_path, 'video_downloader.log'), 'utf8');
    assert.match(log, /EXTINF durations add up to 12\.00 s.*read it with these notes/);
    const api = await svc.app.inject({ method: 'GET', url: `/job/${job.id}` });
    assert.deepEqual(api.json().result.warnings, job.result!.warnings);
  });
});
