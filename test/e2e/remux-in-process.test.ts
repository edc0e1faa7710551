/**
 * The in-process TS -> MP4 remux (src/pipeline/mux/in-process.ts) against the real ffmpeg: for each kind of
 * H.264/AAC stream it takes, its MP4 must hold the same packets (bytes, timestamps, durations) as
 * `ffmpeg -c copy` makes of the same TS, whatever the chunk sizes the bytes arrive in. What it does
 * not take it must refuse up front, or decline at the end, and never write a wrong file.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/jobs/types.js';
import { parseAdts } from '../../src/media/adts.js';
import { parseSps, splitNals } from '../../src/media/h264.js';
import { TsDemuxer } from '../../src/media/ts-demuxer.js';
import { NativeDeclined, NativeMerger, nativeRefusal } from '../../src/pipeline/mux/in-process.js';
import { ffprobeJson, makeTempDir, runFfmpeg, runFfprobe } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

interface Encoded {
  dir: string;
  segments: string[];
}

/** An HLS rendition made by ffmpeg's own muxers: TS segments, with `args` choosing what is in them. */
async function encode(name: string, args: string[], seconds = 4): Promise<Encoded> {
  const dir = await makeTempDir(`native-${name}`);
  await runFfmpeg(
    [
      ...args,
      ...['-t', String(seconds), '-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod'],
      ...['-hls_segment_filename', 's%03d.ts', 'index.m3u8'],
    ],
    dir,
  );
  const segments = (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort();
  return { dir, segments: segments.map((s) => path.join(dir, s)) };
}

const VIDEO = (size = '320x180', rate = 25) => ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}`];
const TONE = (rate = 48000) => ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${rate}`];
const X264 = (preset = 'ultrafast', gop = 50) => ['-c:v', 'libx264', '-preset', preset, '-g', String(gop)];
const AAC = ['-c:a', 'aac', '-b:a', '96k'];

/** Feeds files to a sink in chunks of `chunk` bytes (cut anywhere, TS packets included). */
async function feed(
  sink: { write(chunks: readonly Buffer[]): Promise<unknown> },
  files: string[],
  chunk: number,
) {
  for (const f of files) {
    const data = readFileSync(f);
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i += chunk) chunks.push(data.subarray(i, i + chunk));
    await sink.write(chunks);
  }
}

interface RemuxOptions {
  audio?: string[];
  audioOnly?: boolean;
  chunk?: number;
  moovReserve?: number | null;
}

async function remuxNative(files: string[], o: RemuxOptions = {}): Promise<string> {
  const output = path.join(await makeTempDir('native-out'), 'out.mp4');
  const merger = new NativeMerger({
    separateAudio: o.audio !== undefined,
    audioOnly: o.audioOnly,
    output,
    moovReserve: o.moovReserve === undefined ? 256 * 1024 : o.moovReserve,
    signal: new AbortController().signal,
  });
  await Promise.all([
    feed(merger.main, files, o.chunk ?? 7777),
    o.audio ? feed(merger.audio!, o.audio, o.chunk ?? 3333) : null,
  ]);
  await merger.finish();
  return output;
}

/** What ffmpeg's stream copy makes of the same TS, with the maps Gabe's ffmpeg merge uses. */
async function remuxFfmpeg(files: string[], o: RemuxOptions = {}): Promise<string> {
  const dir = await makeTempDir('native-ref');
  const joined = async (name: string, parts: string[]) => {
    const file = path.join(dir, name);
    await writeFile(file, Buffer.concat(parts.map((p) => readFileSync(p))));
    return file;
  };
  const main = await joined('main.ts', files);
  const args = ['-i', main];
  if (o.audio) args.push('-i', await joined('audio.ts', o.audio));
  if (!o.audioOnly) args.push('-map', '0:v?');
  args.push('-map', o.audio ? '1:a?' : '0:a?', '-c', 'copy', '-f', 'mp4', path.join(dir, 'ref.mp4'));
  await runFfmpeg(args);
  return path.join(dir, 'ref.mp4');
}

/** Every packet of every stream: timestamps, duration, size and an MD5 of its bytes. */
async function packets(file: string): Promise<string> {
  return (await runFfmpeg(['-i', file, '-map', '0', '-c', 'copy', '-f', 'framemd5', '-'])).toString();
}

async function assertSameAsFfmpeg(files: string[], o: RemuxOptions = {}): Promise<string> {
  const [mine, ref] = await Promise.all([remuxNative(files, o), remuxFfmpeg(files, o)]);
  const [a, b] = await Promise.all([packets(mine), packets(ref)]);
  assert.ok(b.split('\n').length > 20, 'the reference has packets');
  assert.equal(a, b);
  const [pm, pr] = await Promise.all([ffprobeJson(mine), ffprobeJson(ref)]);
  assert.equal(pm.format.duration, pr.format.duration);
  assert.deepEqual(
    pm.streams.map((s) => [s.codec_name, s.width, s.height, s.duration]),
    pr.streams.map((s) => [s.codec_name, s.width, s.height, s.duration]),
  );
  return mine;
}

/** Top-level box types of an MP4, in file order. */
function topBoxes(file: string): string[] {
  const b = readFileSync(file);
  const types: string[] = [];
  for (let at = 0; at + 8 <= b.length; ) {
    let size = b.readUInt32BE(at);
    if (size === 1) size = Number(b.readBigUInt64BE(at + 8));
    types.push(b.toString('latin1', at + 4, at + 8));
    if (size < 8) break;
    at += size;
  }
  return types;
}

describe('in-process TS -> MP4 remux', () => {
  let plain: Encoded;
  let bframes: Encoded;

  before(async () => {
    [plain, bframes] = await Promise.all([
      encode('plain', [...VIDEO(), ...TONE(), ...X264(), ...AAC]),
      encode('bframes', [...VIDEO('640x360', 30), ...TONE(44100), ...X264('medium', 60), '-bf', '3', ...AAC]),
    ]);
  });

  it('writes the packets ffmpeg -c copy writes for H.264 without B-frames and 48 kHz AAC', async () => {
    const out = await assertSameAsFfmpeg(plain.segments);
    // The moov went into the reserved space in front: no second pass over the file.
    assert.deepEqual(topBoxes(out), ['ftyp', 'moov', 'free', 'mdat']);
  });

  it('keeps composition offsets and the edit list of B-frame video (x264 medium, 3 B-frames, 44.1 kHz)', async () => {
    await assertSameAsFfmpeg(bframes.segments);
  });

  it('gives the same file whatever sizes the bytes arrive in (1, 187, 188, 64 KiB, whole segments)', async () => {
    const outputs = await Promise.all(
      [1, 187, 188, 65536, 1 << 30].map((chunk) => remuxNative(bframes.segments, { chunk })),
    );
    const first = readFileSync(outputs[0]!);
    for (const o of outputs.slice(1)) assert.ok(first.equals(readFileSync(o)), `${o} differs`);
  });

  it('crops the picture as the SPS says and keeps a non-square pixel aspect ratio', async () => {
    const odd = await encode('odd', [
      ...VIDEO('426x238'),
      ...TONE(22050),
      ...['-vf', 'setsar=4/3'],
      ...X264(),
      ...AAC,
      '-ac',
      '1',
    ]);
    const out = await assertSameAsFfmpeg(odd.segments);
    const v = (await ffprobeJson(out)).streams.find((s) => s.codec_type === 'video')!;
    assert.deepEqual([v.width, v.height], [426, 238]);
    const sar = (await runFfprobe(['-show_entries', 'stream=sample_aspect_ratio', '-of', 'csv=p=0', out]))
      .toString()
      .trim()
      .split('\n')[0];
    assert.equal(sar, '4:3');
  });

  it('follows timestamps across the 33-bit wrap-around of the 90 kHz clock', async () => {
    // 2^33 / 90000 = 95443.7 s: an offset just below it wraps the clock 1.7 s into the stream.
    const wrapped = await encode('wrap', [
      ...VIDEO(),
      ...TONE(),
      ...X264(),
      ...AAC,
      ...['-output_ts_offset', '95442'],
    ]);
    await assertSameAsFfmpeg(wrapped.segments);
  });

  it('muxes a separate audio rendition in place of the main track audio, in sync by its timestamps', async () => {
    const audio = await encode('audio', [...TONE(44100), ...AAC, '-vn']);
    const o = { audio: audio.segments };
    const [mine, ref] = await Promise.all([remuxNative(plain.segments, o), remuxFfmpeg(plain.segments, o)]);
    // ffmpeg starts each of its inputs at 0; the renditions' own clock places them (RFC 8216 6.2.4):
    // the packets and track lengths are the same, the video starts as much after the audio as its
    // first PTS says (ffmpeg's demuxer then trims the last video packet by as much, in its own files too).
    const untimed = async (f: string) =>
      (await packets(f))
        .split('\n')
        .filter((l) => /^\d/.test(l))
        .map((l) => l.split(',').map((c) => c.trim()))
        .map(([stream, , , , size, hash]) => [stream, size, hash].join())
        .sort();
    assert.deepEqual(await untimed(mine), await untimed(ref));
    const durations = async (f: string) => (await ffprobeJson(f)).streams.map((s) => s.duration);
    assert.deepEqual(await durations(mine), await durations(ref));
    const first = (f: string, kind: 'video' | 'audio') => {
      let pts: number | null = null;
      const d = new TsDemuxer(
        { [kind]: (p: { pts: number | null }) => (pts ??= p.pts) },
        { video: kind === 'video', audio: kind === 'audio' },
      );
      d.push(readFileSync(f));
      return pts!;
    };
    const offset = (first(plain.segments[0]!, 'video') - first(audio.segments[0]!, 'audio')) / 90000;
    const v = (await ffprobeJson(mine)).streams.find((s) => s.codec_type === 'video')!;
    assert.ok(offset > 0.005, `the fixture's video starts after its audio (${offset} s)`);
    assert.ok(
      Math.abs(Number(v.start_time) - offset) <= 0.001,
      `video starts at ${v.start_time}, not ${offset}`,
    );
  });

  it('writes only the audio for an audio-only download', async () => {
    const out = await assertSameAsFfmpeg(plain.segments, { audioOnly: true });
    const streams = (await ffprobeJson(out)).streams;
    assert.deepEqual(
      streams.map((s) => s.codec_type),
      ['audio'],
    );
  });

  it('puts the moov in front of a copy when the reserved space is too small, or there is none', async () => {
    for (const moovReserve of [64, null]) {
      const out = await remuxNative(plain.segments, { moovReserve });
      assert.deepEqual(topBoxes(out), ['ftyp', 'moov', 'mdat']);
      assert.equal(await packets(out), await packets(await remuxNative(plain.segments)));
    }
  });

  it('refuses up front what it does not carry: HEVC, MP3 and AC-3 audio, fMP4, not TS at all', async () => {
    const [hevc, mp3, ac3, fmp4] = await Promise.all([
      encode('hevc', [...VIDEO(), '-c:v', 'libx265', '-preset', 'ultrafast', '-an'], 2),
      encode('mp3', [...VIDEO(), ...TONE(44100), ...X264(), '-c:a', 'libmp3lame'], 2),
      encode('ac3', [...VIDEO(), ...TONE(), ...X264(), '-c:a', 'ac3'], 2),
      encode('fmp4', [...VIDEO(), ...X264(), '-hls_segment_type', 'fmp4', '-an'], 2),
    ]);
    const head = (e: Encoded) => readFileSync(e.segments[0]!);
    const want = { video: true, audio: true };
    assert.match(nativeRefusal(head(hevc), want) ?? '', /HEVC/);
    assert.match(nativeRefusal(head(mp3), want) ?? '', /MP3/);
    assert.match(nativeRefusal(head(ac3), want) ?? '', /AC-3|private/);
    const init = readFileSync(path.join(fmp4.dir, 'init.mp4'));
    assert.match(nativeRefusal(init, want) ?? '', /program map/);
    assert.match(nativeRefusal(Buffer.from('<html>nope</html>'), want) ?? '', /program map/);
    // The main track's own MP3 audio does not matter when a separate rendition replaces it.
    assert.equal(nativeRefusal(head(mp3), { video: true, audio: false }), null);
    assert.equal(nativeRefusal(head(plain), want), null);
  });

  it('declines at the end, writing nothing, when the SPS changes midway (a new resolution)', async () => {
    const small = await encode('small', [...VIDEO('320x180'), ...X264(), '-an'], 2);
    const large = await encode('large', [...VIDEO('640x360'), ...X264(), '-an', '-output_ts_offset', '2'], 2);
    await assert.rejects(remuxNative([small.segments[0]!, large.segments[0]!]), (err: unknown) => {
      assert.ok(err instanceof NativeDeclined);
      assert.match((err as Error).message, /SPS changes/);
      return true;
    });
  });

  it('declines when timestamps run backwards by more than a second (a restart without a discontinuity tag)', async () => {
    await assert.rejects(remuxNative([...plain.segments, plain.segments[0]!]), NativeDeclined);
  });
});

/** ffmpeg's mp4 muxer tags its files with its libavformat version; Gabe's remux writes no such tag. */
async function writtenByFfmpeg(file: string): Promise<boolean> {
  const tags = await runFfprobe(['-show_entries', 'format_tags=encoder', '-of', 'csv=p=0', file]);
  return /Lavf/.test(tags.toString());
}

describe('HLS jobs: the in-process remux or ffmpeg', () => {
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
      remoteAddress: `10.9.0.${++ip % 250}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return service.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
  }

  function log(service: TestService): string {
    return readFileSync(path.join(service.config.log_path, 'video_downloader.log'), 'utf8');
  }

  it('remuxes H.264/AAC in-process, and with native_remux false through ffmpeg, to the same packets', async () => {
    const e = await encode('job-plain', [...VIDEO(), ...TONE(), ...X264(), ...AAC]);
    origin.serveDir('/plain/', e.dir);
    const off = await startTestService({ max_jobs_per_ip: 0, native_remux: false });
    const [mine, theirs] = await Promise.all([
      download(`${origin.url}/plain/index.m3u8`),
      download(`${origin.url}/plain/index.m3u8`, off),
    ]);
    assert.equal(mine.status, 'COMPLETED', mine.error ?? '');
    assert.equal(theirs.status, 'COMPLETED', theirs.error ?? '');
    assert.equal(await writtenByFfmpeg(mine.result!.output_path), false);
    assert.equal(await writtenByFfmpeg(theirs.result!.output_path), true);
    assert.equal(await packets(mine.result!.output_path), await packets(theirs.result!.output_path));
    assert.equal(mine.result!.duration_seconds, theirs.result!.duration_seconds);
  });

  it('leaves an HEVC stream to ffmpeg from the start, and says why in the log', async () => {
    const e = await encode('job-hevc', [
      ...VIDEO(),
      ...TONE(),
      '-c:v',
      'libx265',
      '-preset',
      'ultrafast',
      ...AAC,
    ]);
    origin.serveDir('/hevc/', e.dir);
    const job = await download(`${origin.url}/hevc/index.m3u8`);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(await writtenByFfmpeg(job.result!.output_path), true);
    const codecs = (await ffprobeJson(job.result!.output_path)).streams.map((s) => s.codec_name);
    assert.deepEqual(codecs, ['hevc', 'aac']);
    assert.match(
      log(svc),
      /HEVC video\)","msg":"remuxing with ffmpeg: the in-process remux does not take this stream/,
    );
  });

  it('hands over to ffmpeg from the track files when the picture size changes midway without a discontinuity tag', async () => {
    const dir = await makeTempDir('native-sps');
    const small = await encode('job-small', [...VIDEO('320x180'), ...TONE(), ...X264(), ...AAC], 2);
    const large = await encode(
      'job-large',
      [...VIDEO('480x270'), ...TONE(), ...X264(), ...AAC, ...['-output_ts_offset', '2']],
      2,
    );
    await writeFile(path.join(dir, 'a.ts'), readFileSync(small.segments[0]!));
    await writeFile(path.join(dir, 'b.ts'), readFileSync(large.segments[0]!));
    await writeFile(
      path.join(dir, 'index.m3u8'),
      '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.0,\na.ts\n#EXTINF:2.0,\nb.ts\n#EXT-X-ENDLIST\n',
    );
    origin.serveDir('/sps/', dir);
    const job = await download(`${origin.url}/sps/index.m3u8`);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(await writtenByFfmpeg(job.result!.output_path), true);
    assert.ok(Math.abs(job.result!.duration_seconds! - 4) < 0.2, String(job.result!.duration_seconds));
    assert.match(
      log(svc),
      /the SPS changes within the stream.*remuxing with ffmpeg from the track files|remuxing with ffmpeg from the track files.*the SPS changes/,
    );
  });
});

describe('H.264, ADTS and TS parsing for the remux (pure)', () => {
  it('splits Annex B NAL units at 3- and 4-byte start codes, keeping cabac_zero_words', () => {
    const b = Buffer.from([0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 7, 0, 0]);
    const nals = splitNals(b);
    assert.deepEqual(nals, [4, 6, 9, 12, 16, 20]);
  });

  it('reads the picture size of a 1080p SPS (1088 coded lines cropped to 1080)', () => {
    // x264 (ultrafast, Constrained Baseline) 1920x1080 SPS, NAL header included, as it is in the TS.
    const sps = Buffer.from(
      '6742c028da01e0089f970110000003001000000303c600000302c400000302c4038a4801e30654',
      'hex',
    );
    const info = parseSps(sps);
    assert.deepEqual([info.profile, info.level, info.width, info.height], [66, 40, 1920, 1080]);
    assert.deepEqual([info.sarWidth, info.sarHeight], [1, 1]);
  });

  it('reads ADTS headers and refuses what is not one', () => {
    const h = parseAdts(Buffer.from([0xff, 0xf1, 0x50, 0x80, 0x2e, 0x7f, 0xfc]), 0);
    assert.deepEqual(
      h && [h.objectType, h.sampleRate, h.channelConfig, h.frameLength, h.headerLength],
      [2, 44100, 2, 371, 7],
    );
    assert.equal(parseAdts(Buffer.from([0xff, 0xf1, 0x50]), 0), null);
    assert.equal(parseAdts(Buffer.from([0x47, 0x40, 0x11, 0x10, 0, 0, 0]), 0), null);
  });

  it('skips garbage before the first TS packet and finds the program map after it', async () => {
    const seg = await encode('garbage', [...VIDEO(), ...TONE(), ...X264(), ...AAC], 2);
    const d = new TsDemuxer({});
    d.push(Buffer.from('garbage without a sync byte'));
    assert.equal(d.ready, false);
    d.push(readFileSync(seg.segments[0]!));
    assert.equal(d.ready, true);
    assert.ok(d.videoPid > 0 && d.audioPid > 0 && d.videoPid !== d.audioPid);
  });
});
