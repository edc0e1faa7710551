/**
 * The download options on an MPD: they act on the HLS model the MPD becomes (mpd-to-hls.ts), so a
 * clip fetches only the covering segments of both adaptation sets, ad skipping takes DASH periods
 * for discontinuity runs, and the tags and the audio set's language go into the file.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { makeDash, makeDashMultiPeriod, staticMpd } from '../helpers/dash-fixtures.js';
import {
  decodedFrameHashes,
  decodedHash,
  durationOf,
  makeTempDir,
  runFfmpeg,
  runFfprobe,
} from '../helpers/fixtures.js';
import { textInit, textSegment, wvttSample } from '../helpers/fmp4-text.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { cuesOf as mp4Cues, sidecarCues } from '../helpers/subtitles.js';

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

function serveDir(dir: string): string {
  const prefix = `/o${served++}/`;
  origin.serveDir(prefix, dir);
  return prefix;
}

async function download(body: Record<string, unknown>): Promise<Job> {
  const res = await svc.app.inject({
    method: 'POST',
    url: '/download/',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
    remoteAddress: `10.7.0.${++client}`,
  });
  assert.equal(res.statusCode, 200, res.body);
  const job = await svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED'], 60_000);
  assert.equal(job.status, 'COMPLETED', `${job.error_code}: ${job.error}`);
  return job;
}

describe('a clip of an MPD', () => {
  it('fetches only the covering segments of both sets and equals ffmpeg -ss/-to of the whole download', async () => {
    const fx = await makeDash({ mode: 'timeline', seconds: 12 });
    const prefix = serveDir(fx.dir);
    const url = `${origin.url}${prefix}${fx.mpdName}`;
    const whole = await download({ url, video_name: 'whole' });
    origin.reset();
    // Keyframes every second, on the segment boundaries (startWithSAP=1): the clip begins at 4 s.
    const job = await download({ url, start: 4.5, end: 8.3, video_name: 'clip' });
    const media = (set: number) =>
      origin.countRequests(new RegExp(`^${prefix}chunk-stream${set}-\\d+\\.m4s$`));
    // Segments 4..8 (numbered from 1) cover [4.5, 8.3): five of each set, no probe (startWithSAP).
    assert.equal(media(0), 5, 'video segments fetched');
    // Audio segments are cut near, not at, the second (AAC frames): the same window takes five or six.
    assert.ok(media(1) >= 5 && media(1) <= 6, `audio segments fetched: ${media(1)}`);
    assert.deepEqual(job.result?.clip, { start: 4.5, end: 8.3 });
    assert.equal(job.result?.source_format, 'dash');
    // Clip times are on the segments' timeline (video segment k starts at k − 1 s); in the whole file
    // the video starts where its timestamps put it, 21 ms after the audio: the reference cut moves by that.
    const full = whole.result!.output_path;
    const probed = await runFfprobe([
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=start_time',
      '-of',
      'csv=p=0',
      full,
    ]);
    const shift = Number(probed.toString().trim());
    assert.ok(shift >= 0 && shift < 0.1, `video starts at ${shift} s`);
    const ref = path.join(await makeTempDir('dash-clip-ref'), 'ref.mp4');
    const [ss, to] = [(4.5 + shift).toFixed(6), (8.3 + shift).toFixed(6)];
    await runFfmpeg(['-ss', ss, '-to', to, '-i', full, '-map', '0', '-c', 'copy', ref]);
    const mine = job.result!.output_path;
    assert.deepEqual(await decodedFrameHashes(mine), await decodedFrameHashes(ref), 'decoded frames');
    assert.ok(Math.abs((await durationOf(mine)) - (await durationOf(ref))) < 0.05, 'duration');
    // The clip begins on the keyframe at 4 s: 0.5 s of pre-roll hidden by the edit list.
    assert.ok(Math.abs((job.result!.duration_seconds ?? 0) - 3.8) < 0.1, `${job.result!.duration_seconds} s`);
  });
});

/** The body of an ffmpeg-made MPD's Period, with a BaseURL into `base`. */
async function periodBody(file: string): Promise<string> {
  const text = await readFile(file, 'utf8');
  const body = /<Period[^>]*>([\s\S]*)<\/Period>/.exec(text)?.[1];
  if (!body) throw new Error(`no Period in ${file}`);
  return body;
}

describe('ad skipping on an MPD', () => {
  it('skip_segments drops a period by its URLs: the frames of the other period alone', async () => {
    const fx = await makeDashMultiPeriod(3);
    const prefix = serveDir(fx.dir);
    const url = `${origin.url}${prefix}${fx.mpdName}`;
    const job = await download({ url, skip_segments: ['/p1/'] });
    const ref = await decodedFrameHashes(`${origin.url}${prefix}p0/out.mpd`);
    assert.deepEqual(await decodedFrameHashes(job.result!.output_path), ref);
    assert.equal(job.result?.skipped?.segments, 3);
    assert.ok(Math.abs((job.result?.skipped?.seconds ?? 0) - 3) < 0.01);
  });

  it('skip_discontinuity_runs takes a short period between two long ones for an ad break', async () => {
    // Programme (4 s) – ad (2 s) – programme (4 s), each period from its own ffmpeg output.
    const long = await makeDashMultiPeriod(4);
    const short = await makeDashMultiPeriod(2);
    const [lp, sp] = [serveDir(long.dir), serveDir(short.dir)];
    const periods = [
      `<Period id="0" start="PT0S"><BaseURL>${origin.url}${lp}p0/</BaseURL>${await periodBody(path.join(long.dir, 'p0/out.mpd'))}</Period>`,
      `<Period id="ad" start="PT4S"><BaseURL>${origin.url}${sp}p1/</BaseURL>${await periodBody(path.join(short.dir, 'p1/out.mpd'))}</Period>`,
      `<Period id="1" start="PT6S"><BaseURL>${origin.url}${lp}p1/</BaseURL>${await periodBody(path.join(long.dir, 'p1/out.mpd'))}</Period>`,
    ];
    const dir = await makeTempDir('dash-ads');
    await writeFile(path.join(dir, 'ads.mpd'), staticMpd(10, periods));
    const url = `${origin.url}${serveDir(dir)}ads.mpd`;
    const job = await download({ url, skip_discontinuity_runs: 2.5 });
    const programme = [
      ...(await decodedFrameHashes(`${origin.url}${lp}p0/out.mpd`)),
      ...(await decodedFrameHashes(`${origin.url}${lp}p1/out.mpd`)),
    ];
    const mine = await decodedFrameHashes(job.result!.output_path);
    assert.equal(mine.length, programme.length, 'frame count');
    assert.deepEqual(mine, programme);
    assert.deepEqual(job.result?.skipped, { segments: 2, seconds: 2 });
    assert.ok(Math.abs((await durationOf(job.result!.output_path)) - 8) < 0.3);
  });
});

describe('WebVTT and TTML subtitles of an MPD', () => {
  const vtt = (cues: [number, number, string][]) =>
    `WEBVTT\n\n${cues.map(([a, b, t]) => `00:00:0${a.toFixed(3)} --> 00:00:0${b.toFixed(3)}\n${t}\n`).join('\n')}`;
  const english: [number, number, string][] = [
    [0.5, 1.5, 'one'],
    [2.2, 3, 'two'],
    [4, 5.5, 'three'],
  ];
  const french: [number, number, string][] = english.map(([a, b], i) => [a, b, ['un', 'deux', 'trois'][i]!]);
  const italian: [number, number, string][] = english.map(([a, b], i) => [a, b, ['uno', 'due', 'tre'][i]!]);
  const spanish: [number, number, string][] = english.map(([a, b], i) => [
    a,
    b,
    ['uno-es', 'dos', 'tres'][i]!,
  ]);
  const portuguese: [number, number, string][] = english.map(([a, b], i) => [
    a,
    b,
    ['um', 'dois', 'três'][i]!,
  ]);
  const dutch: [number, number, string][] = english.map(([a, b], i) => [a, b, ['een', 'twee', 'drie'][i]!]);
  // EBU-TT-D style: times in ticks of 100 ns.
  const ttml = (cues: [number, number, string][]) =>
    `<?xml version="1.0" encoding="UTF-8"?><tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter" ttp:tickRate="10000000" xml:lang="it"><body><div>${cues
      .map(([a, b, t]) => `<p begin="${Math.round(a * 1e7)}t" end="${Math.round(b * 1e7)}t">${t}</p>`)
      .join('')}</div></body></tt>`;
  let url = '';
  let prefix = '';

  before(async () => {
    const fx = await makeDash({ mode: 'timeline', seconds: 6 });
    prefix = serveDir(fx.dir);
    const sets = [
      '<AdaptationSet mimeType="text/vtt" lang="en"><Representation id="en" bandwidth="256"><BaseURL>en.vtt</BaseURL></Representation></AdaptationSet>',
      '<AdaptationSet contentType="text" mimeType="application/mp4" codecs="stpp.ttml.im1t" lang="de"><Representation id="de" bandwidth="256"><BaseURL>de.mp4</BaseURL></Representation></AdaptationSet>',
      '<AdaptationSet mimeType="text/vtt" lang="fr"><Representation id="fr" bandwidth="256"><BaseURL>fr.vtt</BaseURL></Representation></AdaptationSet>',
      '<AdaptationSet mimeType="application/ttml+xml" lang="it"><Representation id="it" bandwidth="256"><BaseURL>it.ttml</BaseURL></Representation></AdaptationSet>',
      // Segmented WebVTT whose template names an initialization too (a header-only text file).
      '<AdaptationSet mimeType="text/vtt" lang="nl"><SegmentTemplate timescale="1000" duration="2000" startNumber="1" initialization="nl/init.vtt" media="nl/$Number$.vtt"/><Representation id="nl" bandwidth="256"/></AdaptationSet>',
      ...['es', 'pt'].map(
        (lang, i) =>
          `<AdaptationSet contentType="text" mimeType="application/mp4" lang="${lang}"><SegmentTemplate timescale="1000" duration="2000" startNumber="1" initialization="${lang}/init.mp4" media="${lang}/$Number$.m4s"/><Representation id="${lang}" bandwidth="256" codecs="${['stpp', 'wvtt'][i]}"/></AdaptationSet>`,
      ),
    ];
    const mpd = (await readFile(path.join(fx.dir, fx.mpdName), 'utf8')).replace(
      '</Period>',
      `${sets.join('')}</Period>`,
    );
    origin.route(`${prefix}subs.mpd`, { body: mpd, contentType: 'application/dash+xml' });
    origin.route(`${prefix}en.vtt`, { body: vtt(english), contentType: 'text/vtt' });
    origin.route(`${prefix}fr.vtt`, { body: vtt(french), contentType: 'text/vtt' });
    origin.route(`${prefix}it.ttml`, { body: ttml(italian), contentType: 'application/ttml+xml' });
    // fMP4 text tracks, one cue per 2 s segment: TTML (stpp) timed on the track's clock, and WebVTT
    // cue boxes (wvtt), each sample an empty stretch, the cue, and another empty stretch.
    origin.route(`${prefix}nl/init.vtt`, { body: 'WEBVTT\n', contentType: 'text/vtt' });
    for (const [k, cue] of dutch.entries()) origin.route(`${prefix}nl/${k + 1}.vtt`, { body: vtt([cue]) });
    origin.route(`${prefix}es/init.mp4`, { body: textInit('stpp', 1000, 'spa') });
    origin.route(`${prefix}pt/init.mp4`, { body: textInit('wvtt', 1000, 'por') });
    for (const [k, [a, b, t]] of spanish.entries()) {
      const doc = ttml([[a, b, t]]);
      origin.route(`${prefix}es/${k + 1}.m4s`, {
        body: textSegment(k + 1, k * 2000, [{ duration: 2000, data: Buffer.from(doc) }]),
      });
    }
    for (const [k, [a, b, t]] of portuguese.entries()) {
      const [from, to] = [Math.round(a * 1000) - k * 2000, Math.round(b * 1000) - k * 2000];
      const samples = [
        { duration: from, data: wvttSample([]) },
        { duration: to - from, data: wvttSample([{ text: t }]) },
        { duration: 2000 - to, data: wvttSample([]) },
      ].filter((x) => x.duration > 0);
      origin.route(`${prefix}pt/${k + 1}.m4s`, { body: textSegment(k + 1, k * 2000, samples) });
    }
    url = `${origin.url}${prefix}subs.mpd`;
  });

  /** The cues of the MP4's subtitle track `i` and of its sidecar, as [start, end, text]. */
  async function cuesOf(job: Job, i: number): Promise<[number, number, string][][]> {
    const docs = [
      await mp4Cues(job.result!.output_path, i),
      await sidecarCues(job.result!.subtitles![i]!.path),
    ];
    return docs.map((cues) => cues.map((c) => [c.start, c.end, c.text]));
  }

  function assertCues(actual: [number, number, string][], expected: [number, number, string][]): void {
    assert.deepEqual(
      actual.map((c) => c[2]),
      expected.map((c) => c[2]),
    );
    for (const [j, [a, b]] of actual.entries()) {
      assert.ok(
        Math.abs(a - expected[j]![0]) < 0.05 && Math.abs(b - expected[j]![1]) < 0.05,
        `cue ${j}: ${a}-${b}`,
      );
    }
  }

  it('each WebVTT and TTML set, as a file or in fMP4 segments, goes into the MP4 and beside it', async () => {
    const job = await download({ url, video_name: 'dash-subs' });
    assert.deepEqual(
      job.result!.subtitles!.map((s) => s.language),
      ['en', 'fr', 'it', 'nl', 'es', 'pt'],
    );
    for (const [i, expected] of [english, french, italian, dutch, spanish, portuguese].entries())
      for (const cues of await cuesOf(job, i)) assertCues(cues, expected);
    // A progressive MP4 of TTML (BaseURL alone) is left out, unread.
    assert.equal(origin.countRequests(`${prefix}de.mp4`), 0);
    // One copy of the MPD serves the master and the eight tracks' playlists.
    assert.equal(origin.countRequests(`${prefix}subs.mpd`), 1);
    const probe = await svc.app.inject({
      method: 'POST',
      url: '/probe',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url }),
      remoteAddress: `10.7.0.${++client}`,
    });
    assert.deepEqual(
      probe.json().subtitles.map((s: { language: string }) => s.language),
      ['en', 'fr', 'it', 'nl', 'es', 'pt'],
      '/probe lists them',
    );
  });

  it('a clip takes the cues it shows, timed from its start; subtitle_languages picks the set', async () => {
    const job = await download({
      url,
      start: 2.5,
      end: 5,
      subtitle_languages: ['fr'],
      video_name: 'dash-subs-clip',
    });
    assert.deepEqual(
      job.result!.subtitles!.map((s) => s.language),
      ['fr'],
    );
    for (const cues of await cuesOf(job, 0)) {
      assertCues(cues, [
        [0, 0.5, 'deux'],
        [1.5, 2.5, 'trois'],
      ]);
    }
  });
});

describe('tags and languages on an MPD', () => {
  it("writes the title, the source and the chosen audio set's language into the file", async () => {
    const fx = await makeDash({ mode: 'number', seconds: 3, languages: ['eng', 'fre'] });
    const url = `${origin.url}${serveDir(fx.dir)}${fx.mpdName}`;
    const job = await download({ url, audio_language: 'fr', video_name: 'French audio' });
    const out = await runFfprobe(['-show_format', '-show_streams', '-of', 'json', job.result!.output_path]);
    const p = JSON.parse(out.toString()) as {
      format: { tags?: Record<string, string> };
      streams: { codec_type: string; tags?: Record<string, string> }[];
    };
    assert.equal(p.format.tags?.title, 'French audio');
    assert.equal(p.format.tags?.comment, url);
    assert.equal(p.streams.find((s) => s.codec_type === 'audio')?.tags?.language, 'fra');
    // The French set's samples (880 Hz), not the English ones.
    const joined = path.join(await makeTempDir('dash-fre'), 'fre.mp4');
    await writeFile(
      joined,
      Buffer.concat(await Promise.all(fx.audio[1]!.map((f) => readFile(path.join(fx.dir, f))))),
    );
    assert.equal(await decodedHash(job.result!.output_path, 'a'), await decodedHash(joined, 'a'));
  });
});
