/**
 * The long tail of real-world HLS, end to end through the API against a local origin: WebVTT
 * subtitles, request headers a CDN insists on, keys and IVs given out of band, segments disguised as
 * images, discontinuities that switch codec parameters, audio by language and audio only.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { planTrack } from '../../src/pipeline/hls/track-plan.js';
import { parsePlaylist } from '../../src/playlist/parser.js';
import { parseWebVtt } from '../../src/playlist/webvtt-parser.js';
import {
  decodedHash,
  decodedVideoHash,
  durationOf,
  ffprobeJson,
  type HlsAesFixture,
  type HlsDiscontinuityFixture,
  type HlsMediaFixture,
  type HlsSeparateAudioFixture,
  makeHlsAes,
  makeHlsDiscontinuity,
  makeHlsSeparateAudio,
  makeHlsTs,
  makeTempDir,
  runFfmpeg,
  runFfprobe,
} from '../helpers/fixtures.js';
import { textInit, textSegment } from '../helpers/fmp4-text.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { cuesOf, type HlsSubtitlesFixture, makeHlsSubtitles, SOURCE_CUES } from '../helpers/subtitles.js';

/** What `ffmpeg -i URL -c copy` makes of a playlist: what a download must decode to. */
async function reference(url: string, map = ['-map', '0:v?', '-map', '0:a?']): Promise<string> {
  const out = path.join(await makeTempDir('extras-ref'), 'ref.mp4');
  await runFfmpeg(['-v', 'error', '-allowed_extensions', 'ALL', '-i', url, ...map, '-c', 'copy', out]);
  return out;
}

/** A minimal PNG signature and IHDR chunk: what disguising CDNs put in front of each segment. */
const FAKE_PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.from('0000000d49484452000000010000000108060000001f15c489', 'hex'),
]);

/**
 * Two separately encoded pieces joined with EXT-X-DISCONTINUITY the hard way: the first one's audio
 * stops 1.5 s before its video (an ad cut short), the second is another resolution on a clock five
 * seconds ahead (another encoder).
 */
async function makeJoinedStream(): Promise<{ dir: string }> {
  const dir = await makeTempDir('joined');
  const piece = (name: string, video: string, audioSeconds: number, extra: string[]) =>
    runFfmpeg(
      [
        ...['-v', 'error', '-f', 'lavfi', '-i', `${video}:r=25:d=4`],
        ...['-f', 'lavfi', '-i', `sine=f=440:d=${audioSeconds}`],
        ...['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-c:a', 'aac', ...extra],
        ...['-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod'],
        ...['-hls_segment_filename', `${name}/s%d.ts`, `${name}/index.m3u8`],
      ],
      dir,
    );
  mkdirSync(path.join(dir, 'a'));
  mkdirSync(path.join(dir, 'b'));
  await piece('a', 'testsrc2=s=320x180', 2.5, []);
  await piece('b', 'smptebars=s=480x270', 4, ['-output_ts_offset', '5']);
  const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:2', '#EXT-X-PLAYLIST-TYPE:VOD'];
  for (const name of ['a', 'b']) {
    if (name === 'b') lines.push('#EXT-X-DISCONTINUITY');
    lines.push('#EXTINF:2.000000,', `${name}/s0.ts`, '#EXTINF:2.000000,', `${name}/s1.ts`);
  }
  lines.push('#EXT-X-ENDLIST');
  writeFileSync(path.join(dir, 'index.m3u8'), `${lines.join('\n')}\n`);
  return { dir };
}

describe('real-world HLS extras', () => {
  let origin: Origin;
  let svc: TestService;
  let subs: HlsSubtitlesFixture;
  let aes: HlsAesFixture;
  let sep: HlsSeparateAudioFixture;
  let ts: HlsMediaFixture;
  let disc: HlsDiscontinuityFixture;
  let ip = 0;

  before(async () => {
    [subs, aes, sep, ts, disc] = await Promise.all([
      makeHlsSubtitles(),
      makeHlsAes({ iv: 'explicit' }),
      makeHlsSeparateAudio(),
      makeHlsTs({ seconds: 6, segmentSeconds: 2 }),
      makeHlsDiscontinuity({ seconds: [4, 4], secondSize: { width: 480, height: 270 } }),
    ]);
    origin = await startOrigin();
    origin.serveDir('/subs/', subs.dir);
    origin.serveDir('/aes/', aes.dir);
    origin.serveDir('/sep/', sep.dir);
    origin.serveDir('/ts/', ts.dir);
    origin.serveDir('/disc/', disc.dir);
    svc = await startTestService({ max_jobs_per_ip: 0, max_retries: 1 });
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  async function download(body: Record<string, unknown>, service = svc): Promise<Job> {
    const res = await service.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(body),
      remoteAddress: `10.8.0.${++ip % 250}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return service.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  }

  describe('WebVTT subtitles', () => {
    it('muxes every subtitle rendition as mov_text and writes each as a .vtt beside the MP4', async () => {
      const job = await download({ url: `${origin.url}/subs/${subs.masterName}`, video_name: 'subbed' });
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      const streams = (await ffprobeJson(job.result!.output_path)).streams;
      const text = streams.filter((s) => s.codec_type === 'subtitle');
      assert.deepEqual(
        text.map((s) => s.codec_name),
        ['mov_text', 'mov_text'],
      );
      const tags = await runFfprobe([
        '-show_entries',
        'stream_tags=language',
        '-select_streams',
        's',
        '-of',
        'csv=p=0',
        job.result!.output_path,
      ]);
      assert.deepEqual(tags.toString().trim().split('\n'), ['eng', 'fra']);
      const sidecars = job.result!.subtitles!;
      assert.deepEqual(
        sidecars.map((s) => path.basename(s.path)),
        ['subbed.en.vtt', 'subbed.fr.vtt'],
      );
      for (const [i, rendition] of subs.subtitles.entries()) {
        const expected = rendition.cues;
        assert.ok(existsSync(sidecars[i]!.path));
        const beside = parseWebVtt(readFileSync(sidecars[i]!.path, 'utf8')).cues;
        const inMp4 = await cuesOf(job.result!.output_path, i);
        for (const cues of [beside, inMp4]) {
          // Boundary-spanning cues come once, on the MP4's timeline (video starts at videoOffset).
          assert.deepEqual(
            cues.map((c) => c.text),
            expected.map((c) => c.text),
          );
          for (const [j, c] of cues.entries()) {
            assert.ok(Math.abs(c.start - (expected[j]!.start + subs.videoOffset)) < 0.05, `${c.start}`);
            assert.ok(Math.abs(c.end - (expected[j]!.end + subs.videoOffset)) < 0.05, `${c.end}`);
          }
        }
      }
      assert.match(readFileSync(sidecars[1]!.path, 'utf8'), /STYLE/, 'the sidecar keeps the STYLE block');
    });

    it('subtitles: false skips them; subtitle_languages picks among them', async () => {
      const none = await download({ url: `${origin.url}/subs/${subs.masterName}`, subtitles: false });
      assert.equal(none.status, 'COMPLETED', none.error ?? '');
      const types = (await ffprobeJson(none.result!.output_path)).streams.map((s) => s.codec_type);
      assert.ok(!types.includes('subtitle'));
      assert.equal(none.result!.subtitles, undefined);
      assert.equal(origin.countRequests(/\.vtt$/), 0, 'no subtitle segment fetched');

      const fr = await download({ url: `${origin.url}/subs/${subs.masterName}`, subtitle_languages: ['fr'] });
      assert.equal(fr.status, 'COMPLETED', fr.error ?? '');
      assert.deepEqual(
        fr.result!.subtitles!.map((s) => s.language),
        ['fr'],
      );
      const cues = await cuesOf(fr.result!.output_path, 0);
      assert.equal(cues[0]!.text, subs.subtitles[1].cues[0]!.text);
    });

    it('subtitles of more than 64 MiB in all are left out once past it, the video downloaded', async () => {
      // 80 segments of ~1 MB (each under the per-segment cap): the whole would be 80 MB held at once.
      const big = Buffer.from(`WEBVTT\n\nNOTE ${'x'.repeat(1_000_000)}\n\n00:00.500 --> 00:01.000\nhi\n`);
      const list = ['#EXTM3U', '#EXT-X-TARGETDURATION:2', '#EXT-X-PLAYLIST-TYPE:VOD'];
      for (let k = 0; k < 80; k++) {
        origin.route(`/huge/${k}.vtt`, { body: big, contentType: 'text/vtt' });
        list.push('#EXTINF:2.0,', `${k}.vtt`);
      }
      list.push('#EXT-X-ENDLIST', '');
      origin.route('/huge/subs.m3u8', { body: list.join('\n') });
      const master = [
        '#EXTM3U',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="s",NAME="Huge",LANGUAGE="en",URI="/huge/subs.m3u8"',
        `#EXT-X-STREAM-INF:BANDWIDTH=${subs.video.bandwidth},SUBTITLES="s"`,
        `/subs/${subs.video.uri}`,
        '',
      ].join('\n');
      origin.route('/huge/master.m3u8', { body: master });
      const job = await download({ url: `${origin.url}/huge/master.m3u8` });
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      assert.equal(job.result!.subtitles, undefined);
      const fetched = origin.countRequests(/^\/huge\/\d+\.vtt$/);
      // 64 MiB is passed with the 68th; the other seven fetches under way at once still finish.
      assert.ok(fetched >= 68 && fetched <= 75, `${fetched} of 80 segments fetched: it stops past 64 MiB`);
    });

    it('IMSC1 renditions (TTML in fMP4 segments, on the video clock) go in like WebVTT ones', async () => {
      // Each 2 s text segment starts at its video segment's PTS; each cue in the segment where it begins.
      const startMs = subs.videoStartPts / 90;
      const ms = (t: number) => Math.round(startMs + t * 1000);
      const clock = (t: number) => `${(ms(t) / 1000).toFixed(3)}s`;
      const list = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:2', '#EXT-X-PLAYLIST-TYPE:VOD'];
      list.push('#EXT-X-MAP:URI="init.mp4"');
      origin.route('/imsc/init.mp4', { body: textInit('stpp', 1000) });
      for (let k = 0; k < 4; k++) {
        const here = SOURCE_CUES.filter((c) => c.start >= k * 2 && c.start < k * 2 + 2);
        const ps = here.map(
          (c) => `<p begin="${clock(c.start)}" end="${clock(c.end)}">${c.text.replace('\n', '<br/>')}</p>`,
        );
        const doc = `<tt xmlns="http://www.w3.org/ns/ttml"><body><div>${ps.join('')}</div></body></tt>`;
        const body = textSegment(k + 1, ms(k * 2), [{ duration: 2000, data: Buffer.from(doc) }]);
        origin.route(`/imsc/${k}.m4s`, { body });
        list.push('#EXTINF:2.0,', `${k}.m4s`);
      }
      list.push('#EXT-X-ENDLIST', '');
      origin.route('/imsc/index.m3u8', {
        body: list.join('\n'),
        contentType: 'application/vnd.apple.mpegurl',
      });
      const master = [
        '#EXTM3U',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="imsc",NAME="English",LANGUAGE="en",AUTOSELECT=YES,URI="/imsc/index.m3u8"',
        `#EXT-X-STREAM-INF:BANDWIDTH=${subs.video.bandwidth},CODECS="${subs.video.codecs},stpp.ttml.im1t",SUBTITLES="imsc"`,
        `/subs/${subs.video.uri}`,
        '',
      ].join('\n');
      origin.route('/imsc/master.m3u8', { body: master, contentType: 'application/vnd.apple.mpegurl' });
      const job = await download({ url: `${origin.url}/imsc/master.m3u8` });
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      const cues = await cuesOf(job.result!.output_path, 0);
      assert.deepEqual(
        cues.map((c) => c.text),
        SOURCE_CUES.map((c) => c.text.replace(/<\/?i>/g, '')),
      );
      for (const [j, c] of cues.entries()) {
        assert.ok(
          Math.abs(c.start - (SOURCE_CUES[j]!.start + subs.videoOffset)) < 0.05,
          `${c.text} at ${c.start}`,
        );
      }
    });
  });

  it('sends config and request headers with every fetch: playlists, segments and keys', async () => {
    const ref = await reference(path.join(aes.dir, aes.playlistName));
    const needs = (req: { headers: Record<string, unknown> }) =>
      req.headers['referer'] !== 'https://player.example/' || req.headers['x-cdn-token'] !== 'abc';
    origin.addFault({ match: (r) => r.path.startsWith('/aes/') && needs(r), status: 403 });
    const withDefaults = await startTestService({ max_jobs_per_ip: 0, headers: { 'X-CDN-Token': 'abc' } });
    const url = `${origin.url}/aes/${aes.playlistName}`;
    const refused = await download({ url }, withDefaults);
    assert.equal(refused.status, 'FAILED');
    assert.match(refused.error ?? '', /403/);
    const job = await download({ url, headers: { Referer: 'https://player.example/' } }, withDefaults);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const fetched = origin.requests.filter((r) => r.path.startsWith('/aes/') && r.status === 200);
    assert.ok(fetched.some((r) => r.path.endsWith('.key')) && fetched.some((r) => r.path.endsWith('.ts')));
    assert.equal(await decodedVideoHash(job.result!.output_path), await decodedVideoHash(ref));
  });

  it('refuses request headers Gabe must set itself, and header injection, with 422', async () => {
    for (const headers of [
      { Range: 'bytes=0-' },
      { Host: 'x' },
      { 'X-Bad': 'a\r\nInjected: 1' },
      { 'Bad Name': 'x' },
    ]) {
      const res = await svc.app.inject({
        method: 'POST',
        url: '/download/',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ url: `${origin.url}/ts/${ts.playlistName}`, headers }),
      });
      assert.equal(res.statusCode, 422, JSON.stringify(headers));
      assert.equal(res.json().code, 'GABE_ERR_VALIDATION');
    }
  });

  it('uses a key given in the request instead of a key URI that needs out-of-band auth', async () => {
    origin.addFault({ match: /\.key$/, status: 403 });
    const url = `${origin.url}/aes/${aes.playlistName}`;
    const without = await download({ url });
    assert.equal(without.error_code, 'GABE_ERR_KEY');
    const job = await download({ url, key: aes.key.toString('hex') });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(origin.countRequests(/\.key$/), 1, 'only the job without a key asked for it');
    origin.reset();
    assert.equal(
      await decodedVideoHash(job.result!.output_path),
      await decodedVideoHash(await reference(url)),
    );
  });

  it('uses an IV given in the request when the playlist does not carry the one the stream needs', async () => {
    // The same segments with their IV attribute removed: the IV would default to the sequence number.
    const text = readFileSync(path.join(aes.dir, aes.playlistName), 'utf8').replace(
      /,IV=0x[0-9a-fA-F]+/g,
      '',
    );
    origin.route('/aes/noiv.m3u8', { body: text });
    const url = `${origin.url}/aes/noiv.m3u8`;
    const ref = await decodedVideoHash(await reference(path.join(aes.dir, aes.playlistName)));
    // With CBC a wrong IV garbles only each segment's first 16 bytes, which ffmpeg may resync past,
    // so the plan is checked for the IV it decrypts with, and the output against the original.
    const media = parsePlaylist(text, url);
    assert.ok(media.kind === 'media');
    const plan = planTrack(media, { key: false, iv: aes.iv! });
    assert.ok(plan.pieces.every((p) => p.decrypt?.iv.equals(aes.iv!)));
    const job = await download({ url, iv: `0x${aes.iv!.toString('hex')}` });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(await decodedVideoHash(job.result!.output_path), ref);
  });

  it('cuts fake PNG headers off disguised MPEG-TS segments', async () => {
    for (const seg of ts.segments) {
      const real = readFileSync(path.join(ts.dir, seg));
      origin.route(`/disguised/${seg}`, { body: Buffer.concat([FAKE_PNG, real]), contentType: 'image/png' });
    }
    origin.route('/disguised/index.m3u8', { body: readFileSync(ts.playlist, 'utf8') });
    const job = await download({ url: `${origin.url}/disguised/index.m3u8` });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const ref = await reference(`${origin.url}/ts/${ts.playlistName}`);
    assert.equal(await decodedVideoHash(job.result!.output_path), await decodedVideoHash(ref));
    assert.equal(await decodedHash(job.result!.output_path, 'a'), await decodedHash(ref, 'a'));
  });

  it('merges a discontinuity that changes resolution and jumps the clock, without gap or A/V drift', async () => {
    const joined = await makeJoinedStream();
    origin.serveDir('/joined/', joined.dir);
    const job = await download({ url: `${origin.url}/joined/index.m3u8` });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const out = job.result!.output_path;
    // 4 s + 4 s: a merge that kept the second piece's clock would leave a hole of about a second.
    assert.ok(Math.abs((await durationOf(out)) - 8) < 0.1, `${await durationOf(out)} s`);
    // -xerror: the first decoding error fails the command (and the test).
    await runFfmpeg(['-v', 'error', '-xerror', '-i', out, '-f', 'null', '-']);
    const packets = (await runFfprobe(['-show_entries', 'packet=codec_type,pts_time', '-of', 'csv=p=0', out]))
      .toString()
      .trim()
      .split('\n')
      .map((l: string) => l.split(','));
    const times = (type: string) =>
      packets
        .filter(([t]) => t === type)
        .map(([, pts]) => Number(pts))
        .sort((x, y) => x - y);
    const video = times('video');
    assert.equal(video.length, 200, 'every frame of both pieces (25 fps, 8 s)');
    for (let i = 1; i < video.length; i++) {
      assert.ok(
        video[i]! - video[i - 1]! < 0.05,
        `a ${video[i]! - video[i - 1]!} s gap at ${video[i - 1]} s`,
      );
    }
    // The second piece's audio starts with its video, right where the first piece ends, although the
    // first piece's audio stopped 1.5 s early.
    const firstAfter = (list: number[]) => list.find((t) => t >= 4)!;
    assert.ok(Math.abs(firstAfter(video) - 4) < 0.05, `video resumes at ${firstAfter(video)}`);
    assert.ok(
      Math.abs(firstAfter(times('audio')) - 4) < 0.05,
      `audio resumes at ${firstAfter(times('audio'))}`,
    );
  });

  it('picks the audio rendition by audio_language, and downloads only the audio into .m4a', async () => {
    const url = `${origin.url}/sep/${sep.masterName}`;
    const fr = sep.audio.find((r) => r.language === 'fr')!;
    const en = sep.audio.find((r) => r.language === 'en')!;
    const job = await download({ url, audio_language: 'fr' });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    const frRef = await reference(`${origin.url}/sep/${fr.uri}`, ['-map', '0:a']);
    assert.equal(await decodedHash(job.result!.output_path, 'a'), await decodedHash(frRef, 'a'));
    assert.equal(
      origin.countRequests(new RegExp(`^/sep/${path.dirname(en.uri)}/`)),
      0,
      'English not fetched',
    );

    origin.reset();
    const audio = await download({ url, audio_only: true, video_name: 'sound' });
    assert.equal(audio.status, 'COMPLETED', audio.error ?? '');
    assert.equal(path.basename(audio.result!.output_path), 'sound.m4a');
    assert.equal(audio.result!.container, 'm4a');
    assert.equal(audio.result!.resolution, null);
    const types = (await ffprobeJson(audio.result!.output_path)).streams.map((s) => s.codec_type);
    assert.deepEqual(types, ['audio']);
    const enRef = await reference(`${origin.url}/sep/${en.uri}`, ['-map', '0:a']);
    assert.equal(await decodedHash(audio.result!.output_path, 'a'), await decodedHash(enRef, 'a'));
    assert.equal(
      origin.countRequests(new RegExp(`^/sep/${path.dirname(sep.video.uri)}/.*\\.ts$`)),
      0,
      'no video segment fetched',
    );

    const muxed = await download({ url: `${origin.url}/ts/${ts.playlistName}`, audio_only: true });
    assert.equal(muxed.status, 'COMPLETED', muxed.error ?? '');
    const muxedTypes = (await ffprobeJson(muxed.result!.output_path)).streams.map((s) => s.codec_type);
    assert.deepEqual(muxedTypes, ['audio'], 'audio taken out of muxed segments');
  });
});
