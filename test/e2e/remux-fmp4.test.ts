/**
 * The in-process remux of fMP4 (CMAF) tracks (src/media/fmp4-*.ts through
 * src/pipeline/mux/in-process.ts) against the real ffmpeg: for each kind of fragmented stream ffmpeg's
 * own muxers write, its MP4 must hold the same packets, A/V offset and seek points as
 * `ffmpeg -c copy` makes of the same input, whatever chunk sizes the bytes arrive in. What it cannot
 * carry faithfully (a damaged fragment, a new init segment, encrypted samples) it must refuse up
 * front or decline at the end, never write a wrong file.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { fmp4Refusal } from '../../src/media/fmp4-reader.js';
import { NativeDeclined, NativeMerger } from '../../src/pipeline/mux/in-process.js';
import { assertSameMedia, ffmpegCopy, streamFacts } from '../helpers/differential.js';
import { ffprobeJson, makeTempDir, runFfmpeg, runFfprobe } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

// 'remuxing in-process' is a debug line: the service tests below read it from the log file.
process.env['GABE_LOG_LEVEL'] = 'debug';

const VIDEO = (size = '320x180') => ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25`];
const TONE = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50'];
const BFRAMES = ['-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', '50'];
const AAC = ['-c:a', 'aac', '-b:a', '96k'];

interface Encoded {
  dir: string;
  playlist: string;
  /** The track file's pieces in order: the init segment, then the media segments. */
  files: string[];
}

/** An fMP4 HLS rendition made by ffmpeg's hls muxer, `args` choosing what is in it. */
async function encodeHls(name: string, args: string[], seconds = 4, extra: string[] = []): Promise<Encoded> {
  const dir = await makeTempDir(`fmp4-${name}`);
  await runFfmpeg(
    [
      ...args,
      ...['-t', String(seconds), '-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod'],
      ...['-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'init.mp4', ...extra],
      ...['-hls_segment_filename', 's%03d.m4s', 'index.m3u8'],
    ],
    dir,
  );
  const segments = (await readdir(dir)).filter((f) => f.endsWith('.m4s')).sort();
  return {
    dir,
    playlist: path.join(dir, 'index.m3u8'),
    files: ['init.mp4', ...segments].map((f) => path.join(dir, f)),
  };
}

/**
 * One fragmented MP4 file (init and fragments in one stream) made by ffmpeg's mp4 muxer; `delay`
 * writes the moov after the first packets (AC-3 needs them for its dac3) instead of an empty one.
 */
async function encodeFragmented(name: string, args: string[], delay = false): Promise<string> {
  const out = path.join(await makeTempDir(`fmp4-${name}`), 'frag.mp4');
  const flags = `+frag_keyframe+default_base_moof${delay ? '+delay_moov' : '+empty_moov'}`;
  await runFfmpeg([...args, '-t', '4', '-movflags', flags, '-f', 'mp4', out]);
  return out;
}

/** Feeds files to a sink in chunks of `chunk` bytes (cut anywhere, boxes included), one write per file. */
async function feed(
  sink: { write(chunks: readonly Buffer[]): Promise<unknown> },
  files: Buffer[],
  chunk: number,
) {
  for (const data of files) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i += chunk) chunks.push(data.subarray(i, i + chunk));
    await sink.write(chunks);
  }
}

interface RemuxOptions {
  audio?: Buffer[];
  audioOnly?: boolean;
  chunk?: number;
  moovReserve?: number | null;
}

async function remux(files: Buffer[], o: RemuxOptions = {}): Promise<string> {
  const output = path.join(await makeTempDir('fmp4-out'), 'out.mp4');
  const merger = new NativeMerger({
    format: 'fmp4',
    audioOnly: o.audioOnly,
    separateAudio: o.audio !== undefined,
    output,
    moovReserve: o.moovReserve === undefined ? 64 * 1024 : o.moovReserve,
    signal: new AbortController().signal,
  });
  await Promise.all([
    feed(merger.main, files, o.chunk ?? 7777),
    o.audio ? feed(merger.audio!, o.audio, o.chunk ?? 3333) : null,
  ]);
  await merger.finish();
  return output;
}

const read = (files: string[]) => files.map((f) => readFileSync(f));

async function reference(input: string): Promise<string> {
  return ffmpegCopy(input, path.join(await makeTempDir('fmp4-ref'), 'ref.mp4'));
}

/** Stream durations (seconds) as ffprobe reads them. */
async function durations(file: string): Promise<number[]> {
  return (await ffprobeJson(file)).streams.map((s) => Number(s.duration));
}

const codecs = async (file: string) => (await ffprobeJson(file)).streams.map((s) => s.codec_name);

async function assertLikeFfmpeg(mine: string, ref: string): Promise<void> {
  await assertSameMedia(mine, ref);
  const [a, b] = await Promise.all([durations(mine), durations(ref)]);
  assert.deepEqual(
    a.map((d) => d.toFixed(2)),
    b.map((d) => d.toFixed(2)),
    'the same stream durations',
  );
}

describe('in-process remux of fMP4 against ffmpeg -c copy of the same input', () => {
  it('H.264 with B-frames and AAC in one fMP4 track, whatever the chunk sizes', async () => {
    const e = await encodeHls('bframes', [...VIDEO(), ...TONE, ...BFRAMES, ...AAC]);
    const ref = await reference(e.playlist);
    for (const chunk of [101, 7777, 1 << 20])
      await assertLikeFfmpeg(await remux(read(e.files), { chunk }), ref);
  });

  it('negative composition offsets (trun version 1) move the decode times, as ffmpeg does', async () => {
    const e = await encodeHls('negative-cts', [...VIDEO(), ...BFRAMES], 4, [
      ...['-hls_segment_options', 'movflags=+negative_cts_offsets'],
    ]);
    const trun = readFileSync(e.files[1]!).indexOf('trun');
    assert.equal(readFileSync(e.files[1]!)[trun + 4], 1, 'the fixture has trun version 1');
    await assertLikeFfmpeg(await remux(read(e.files)), await reference(e.playlist));
  });

  it('several truns per traf (samples interleaved within a fragment)', async () => {
    const file = await encodeFragmented('interleaved', [
      ...VIDEO(),
      ...TONE,
      ...X264,
      ...AAC,
      ...['-frag_interleave', '5'],
    ]);
    const data = readFileSync(file);
    const moof = data.indexOf('moof');
    const truns = data.subarray(moof, data.indexOf('mdat', moof)).toString('latin1').split('trun').length - 1;
    assert.ok(truns > 2, `the fixture has ${truns} truns in its first moof`);
    await assertLikeFfmpeg(await remux([data]), await reference(file));
  });

  it('HEVC (hvc1) carried by its sample entry unchanged', async () => {
    const hevc = [
      '-c:v',
      'libx265',
      '-preset',
      'ultrafast',
      '-x265-params',
      'log-level=error',
      '-tag:v',
      'hvc1',
    ];
    const file = await encodeFragmented('hevc', [...VIDEO(), ...TONE, ...hevc, ...AAC]);
    const mine = await remux([readFileSync(file)]);
    await assertLikeFfmpeg(mine, await reference(file));
    assert.deepEqual(await codecs(mine), ['hevc', 'aac']);
  });

  it('AC-3 with its priming edit (media_time 256): kept, the video moved later, as ffmpeg does', async () => {
    const file = await encodeFragmented(
      'ac3',
      [...VIDEO(), ...TONE, ...X264, '-c:a', 'ac3', '-b:a', '128k'],
      true,
    );
    const mine = await remux([readFileSync(file)]);
    const [video, audio] = await assertSameMedia(mine, await reference(file));
    assert.ok(
      video!.start - audio!.start > 0.004,
      `the video starts ${video!.start - audio!.start} s after the audio`,
    );
    assert.deepEqual(await codecs(mine), ['h264', 'ac3']);
  });

  it('Opus carried by its sample entry (dOps): every packet of the source, the short last frame too', async () => {
    const file = await encodeFragmented('opus', [
      ...VIDEO(),
      ...TONE,
      ...X264,
      '-c:a',
      'libopus',
      '-b:a',
      '64k',
    ]);
    const mine = await remux([readFileSync(file)]);
    assert.deepEqual(await codecs(mine), ['h264', 'opus']);
    // ffmpeg's stream copy leaves out the last Opus packet (312 samples after 200 of 960), which the
    // source holds and a player plays: the remux carries it. Everything else is ffmpeg's.
    const [a, ref, source] = await Promise.all([
      streamFacts(mine),
      streamFacts(await reference(file)),
      streamFacts(file),
    ]);
    assert.deepEqual(a[1]!.packets, source[1]!.packets);
    assert.deepEqual(a[1]!.packets.slice(0, -1), ref[1]!.packets);
    assert.deepEqual(a[0], ref[0]);
  });

  it('audio_only takes the audio of a muxed track, and an audio-only track needs no video', async () => {
    const e = await encodeHls('audio-only', [...VIDEO(), ...TONE, ...X264, ...AAC]);
    const ref = path.join(await makeTempDir('fmp4-ref'), 'ref.m4a');
    await runFfmpeg(['-i', e.playlist, '-map', '0:a', '-c', 'copy', '-f', 'mp4', ref]);
    await assertLikeFfmpeg(await remux(read(e.files), { audioOnly: true }), ref);
    const sound = await encodeHls('sound-only', [...TONE, ...AAC]);
    await assertLikeFfmpeg(await remux(read(sound.files)), await reference(sound.playlist));
  });

  it('a separate fMP4 audio rendition keeps its offset to the video (tfdt), with no room for the moov in front', async () => {
    const video = await encodeHls('sep-video', [...VIDEO(), ...X264, '-an']);
    const audio = await encodeHls('sep-audio', [...TONE, ...AAC, '-vn', '-output_ts_offset', '1.5']);
    // The master beside the video playlist; the audio playlist's URIs made absolute (file paths).
    const audioList = (await readFile(audio.playlist, 'utf8'))
      .replace(/^(s\d+\.m4s)$/gm, `${audio.dir}/$1`)
      .replace('URI="init.mp4"', `URI="${audio.dir}/init.mp4"`);
    await writeFile(path.join(video.dir, 'audio.m3u8'), audioList);
    const master = path.join(video.dir, 'master.m3u8');
    await writeFile(
      master,
      '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",DEFAULT=YES,URI="audio.m3u8"\n' +
        '#EXT-X-STREAM-INF:BANDWIDTH=500000,CODECS="avc1.42c00d,mp4a.40.2",AUDIO="a"\nindex.m3u8\n',
    );
    const ref = await reference(master);
    const mine = await remux(read(video.files), { audio: read(audio.files), moovReserve: null });
    const [v, a] = await assertSameMedia(mine, ref);
    assert.ok(
      Math.abs(a!.start - v!.start - 1.5) < 0.1,
      `audio starts ${(a!.start - v!.start).toFixed(3)} s later`,
    );
  });
});

describe('fMP4 the in-process remux must not carry', () => {
  async function declined(files: Buffer[]): Promise<string> {
    const err = await remux(files).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof NativeDeclined, `declined, not ${String(err)}`);
    return err.message;
  }

  it('a truncated mdat: declined (ffmpeg takes over from the track files), never a short file', async () => {
    const e = await encodeHls('truncated', [...VIDEO(), ...TONE, ...X264, ...AAC], 6);
    const files = read(e.files);
    files[2] = files[2]!.subarray(0, files[2]!.length - 5000);
    assert.match(await declined(files), /fMP4: /);
  });

  it('a trun whose samples run past the mdat: declined', async () => {
    const e = await encodeHls('bad-trun', [...VIDEO(), ...X264], 4);
    const files = read(e.files);
    const seg = Buffer.from(files[1]!);
    const trun = seg.indexOf('trun');
    // sample_count, the first field after version and flags: far more samples than the mdat holds.
    seg.writeUInt32BE(seg.readUInt32BE(trun + 8) + 40, trun + 8);
    files[1] = seg;
    assert.match(await declined(files), /a trun shorter than its sample count|a sample outside its mdat/);
  });

  it('a second, different init segment within the stream: declined', async () => {
    const a = await encodeHls('init-a', [...VIDEO('320x180'), ...X264], 2);
    const b = await encodeHls('init-b', [...VIDEO('480x270'), ...X264, '-output_ts_offset', '2'], 2);
    assert.match(await declined([...read(a.files), ...read(b.files)]), /a new init segment/);
  });

  it('the same init segment repeated (EXT-X-MAP again) changes nothing', async () => {
    const e = await encodeHls('init-again', [...VIDEO(), ...X264], 4);
    const [init, ...segments] = read(e.files);
    const mine = await remux([init!, segments[0]!, init!, ...segments.slice(1)]);
    await assertLikeFfmpeg(mine, await reference(e.playlist));
  });

  it('encrypted sample entries (encv) and senc boxes are refused up front', async () => {
    const e = await encodeHls('encv', [...VIDEO(), ...X264], 2);
    const [init, seg] = read(e.files);
    const enc = Buffer.from(init!);
    enc.write('encv', enc.indexOf('avc1'), 'latin1');
    assert.match(fmp4Refusal(Buffer.concat([enc, seg!]), { video: true, audio: true }) ?? '', /encrypted/);
    assert.equal(fmp4Refusal(Buffer.concat([init!, seg!]), { video: true, audio: true }), null);
  });
});

describe('fMP4 HLS jobs through the service', () => {
  let origin: Origin;
  let svc: TestService;
  let ip = 0;
  before(async () => {
    origin = await startOrigin();
    svc = await startTestService({ max_jobs_per_ip: 0 });
  });
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  async function download(url: string, service = svc): Promise<Job> {
    const res = await service.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url }),
      remoteAddress: `10.11.0.${++ip % 250}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return service.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  }

  const log = (service: TestService) =>
    readFileSync(path.join(service.config.log_path, 'video_downloader.log'), 'utf8');
  const writtenByFfmpeg = async (file: string) =>
    /Lavf/.test(
      (await runFfprobe(['-show_entries', 'format_tags=encoder', '-of', 'csv=p=0', file])).toString(),
    );

  it('muxed A/V fMP4 HLS with B-frames: remuxed in-process, equal to ffmpeg -i <playlist URL> -c copy', async () => {
    const e = await encodeHls('job-bframes', [...VIDEO(), ...TONE, ...BFRAMES, ...AAC], 6);
    origin.serveDir('/bf/', e.dir);
    const url = `${origin.url}/bf/index.m3u8`;
    const [job, ref] = await Promise.all([download(url), reference(url)]);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(await writtenByFfmpeg(job.result!.output_path), false);
    assert.match(log(svc), /"format":"fmp4","msg":"remuxing in-process"/);
    await assertLikeFfmpeg(job.result!.output_path, ref);
  });

  it("DASH-packaged segments (ffmpeg's dash muxer: separate video and audio fMP4) via its HLS playlists: in-process, equal to ffmpeg", async () => {
    const dir = await makeTempDir('fmp4-dash');
    await runFfmpeg(
      [
        ...[...VIDEO(), ...TONE, '-t', '6', ...BFRAMES, ...AAC],
        ...[
          '-f',
          'dash',
          '-seg_duration',
          '1',
          '-use_template',
          '1',
          '-use_timeline',
          '1',
          '-hls_playlist',
          '1',
        ],
        ...['-adaptation_sets', 'id=0,streams=v id=1,streams=a', 'index.mpd'],
      ],
      dir,
    );
    origin.serveDir('/dash/', dir);
    const url = `${origin.url}/dash/master.m3u8`;
    const [job, ref] = await Promise.all([download(url), reference(url)]);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(await writtenByFfmpeg(job.result!.output_path), false);
    await assertLikeFfmpeg(job.result!.output_path, ref);
  });

  it('a damaged fragment midway: the job hands over to ffmpeg from the track files, and says why', async () => {
    const e = await encodeHls('job-damaged', [...VIDEO(), ...TONE, ...X264, ...AAC], 6);
    const seg = path.join(e.dir, 's001.m4s');
    const data = readFileSync(seg);
    await writeFile(seg, data.subarray(0, data.length - 3000));
    origin.serveDir('/damaged/', e.dir);
    const job = await download(`${origin.url}/damaged/index.m3u8`);
    assert.match(log(svc), /fMP4: .*remuxing with ffmpeg from the track files/);
    if (job.status === 'COMPLETED') assert.equal(await writtenByFfmpeg(job.result!.output_path), true);
  });

  it('resumes after a restart by re-feeding the track file, and still equals ffmpeg', async () => {
    const e = await encodeHls('job-resume', [...VIDEO('640x360'), ...TONE, ...BFRAMES, ...AAC], 8);
    origin.serveDir('/resume/', e.dir);
    const url = `${origin.url}/resume/index.m3u8`;
    const throttle = origin.addFault({ match: /\.m4s$/, throttleBytesPerSec: 50_000 });
    let own = await startTestService({ max_jobs_per_ip: 0, max_concurrent_downloads: 1 });
    const id = (
      await own.app.inject({
        method: 'POST',
        url: '/download/',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ url }),
        remoteAddress: '10.12.0.1',
      })
    ).json().job_id;
    await own.waitFor(id, (j) => j.status === 'PROCESSING' && j.downloaded_segments >= 1);
    own = await own.restart();
    throttle.remove();
    const [job, ref] = await Promise.all([own.waitFor(id, ['COMPLETED', 'FAILED']), reference(url)]);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.attempts, 2);
    assert.equal(await writtenByFfmpeg(job.result!.output_path), false);
    await assertLikeFfmpeg(job.result!.output_path, ref);
  });
});
