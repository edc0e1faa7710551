/**
 * The in-process remux against `ffmpeg -c copy` on MPEG-TS that ffmpeg's own muxer never writes but
 * other muxers and networks do: access units spread over several PES packets (or one per NAL unit, or
 * cut inside a NAL unit), ADTS headers cut by PES boundaries, a 33-bit clock wrap between the first
 * video DTS and the first audio PTS, open-GOP and IDR-less streams, and packets lost, damaged or
 * duplicated in transport. The streams are an ffmpeg encode, taken apart into its elementary streams
 * and packed again by test/helpers/ts-writer.ts; the reference is ffmpeg's stream copy of the very
 * same bytes (with `-fflags +discardcorrupt` where packets were damaged, the behaviour Gabe follows).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { NativeMerger } from '../../src/pipeline/mux/in-process.js';
import { ffmpegCopy, framemd5, streamFacts } from '../helpers/differential.js';
import { makeTempDir, runFfmpeg } from '../helpers/fixtures.js';
import {
  adtsFrames,
  type EsStream,
  nalStarts,
  readEs,
  type StreamOut,
  type TsPacketOut,
  writeTs,
} from '../helpers/ts-writer.js';

const WRAP = 2 ** 33;

/** An ffmpeg encode, as its elementary streams: H.264 with B-frames (video) and 48 kHz AAC (audio). */
async function encode(name: string, video: string[], seconds = 4): Promise<{ dir: string; files: string[] }> {
  const dir = await makeTempDir(`layouts-${name}`);
  await runFfmpeg(
    [
      ...['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
      ...['-t', String(seconds), '-c:v', 'libx264', ...video, '-c:a', 'aac', '-b:a', '96k'],
      ...['-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod', '-hls_segment_filename', 's%03d.ts'],
      'index.m3u8',
    ],
    dir,
  );
  const files = (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort();
  return { dir, files: files.map((f) => path.join(dir, f)) };
}

function streamsOf(es: EsStream[]): { video: EsStream; audio: EsStream } {
  const video = es.find((s) => s.type === 0x1b);
  const audio = es.find((s) => s.type === 0x0f);
  assert.ok(video && audio, 'the encode has H.264 and AAC');
  return { video, audio };
}

/** The stream as it was: one PES per access unit, one per run of ADTS frames. */
const asIs = (s: EsStream): StreamOut => ({
  pid: s.pid,
  type: s.type,
  streamId: s.streamId,
  pes: s.units.map((u) => ({ data: u.data, pts: u.pts, dts: u.dts })),
});

/** `s` with its PES payloads cut at the offsets `cuts(unit)` says; only the first piece keeps timestamps. */
function split(s: EsStream, cuts: (data: Buffer) => number[]): StreamOut {
  const out = asIs(s);
  out.pes = s.units.flatMap((u) => {
    const at = [
      ...new Set([0, ...cuts(u.data).filter((c) => c > 0 && c < u.data.length), u.data.length]),
    ].sort((a, b) => a - b);
    return at.slice(0, -1).map((start, i) => ({
      data: u.data.subarray(start, at[i + 1]),
      pts: i === 0 ? u.pts : null,
      dts: i === 0 ? u.dts : null,
      bounded: true,
    }));
  });
  return out;
}

let outputs = 0;

/** The remux of `segments` (each written as one fetch, cut into `chunk`-byte pieces). */
async function remux(
  segments: Buffer[],
  chunk = 5000,
): Promise<{ file: string; warnings: readonly string[] }> {
  const file = path.join(await makeTempDir('layouts-out'), `out${outputs++}.mp4`);
  const merger = new NativeMerger({
    separateAudio: false,
    output: file,
    moovReserve: 256 * 1024,
    signal: new AbortController().signal,
  });
  for (const seg of segments) {
    const pieces: Buffer[] = [];
    for (let i = 0; i < seg.length; i += chunk) pieces.push(seg.subarray(i, i + chunk));
    await merger.main.write(pieces);
  }
  await merger.finish();
  return { file, warnings: merger.warnings };
}

/** ffmpeg's stream copy of the same bytes. */
async function reference(ts: Buffer, discardCorrupt = false): Promise<string> {
  const dir = await makeTempDir('layouts-ref');
  await writeFile(path.join(dir, 'in.ts'), ts);
  const before = discardCorrupt ? ['-fflags', '+discardcorrupt'] : [];
  return ffmpegCopy(path.join(dir, 'in.ts'), path.join(dir, 'ref.mp4'), before);
}

/** Same packets (bytes, timestamps, durations) and the same seek points as the reference. */
async function assertAsFfmpeg(mine: string, ref: string): Promise<string[]> {
  const [a, b] = await Promise.all([framemd5(mine), framemd5(ref)]);
  assert.ok(b.length > 100, 'the reference has packets');
  assert.deepEqual(a, b);
  const [fa, fb] = await Promise.all([streamFacts(mine), streamFacts(ref)]);
  assert.deepEqual(
    fa.map((s) => [s.kind, s.start, s.keyframes]),
    fb.map((s) => [s.kind, s.start, s.keyframes]),
  );
  return a;
}

describe('in-process remux of PES layouts and damage that ffmpeg itself never writes', () => {
  let video: EsStream;
  let audio: EsStream;
  let clean: string[];

  before(async () => {
    const src = await encode('bframes', ['-preset', 'medium', '-g', '50', '-bf', '3']);
    ({ video, audio } = streamsOf(readEs(Buffer.concat(src.files.map((f) => readFileSync(f))))));
    clean = await framemd5(await reference(writeTs([asIs(video), asIs(audio)])));
  });

  it('keeps audio and video together when the 33-bit clock wraps between the first video DTS and the first audio PTS', async () => {
    // The first video DTS 2000 ticks before the wrap; its PTS and every audio PTS after it.
    const shift = WRAP - video.units[0]!.dts! - 2000;
    const moved = (s: EsStream): StreamOut => ({
      ...asIs(s),
      pes: s.units.map((u) => ({ data: u.data, pts: u.pts! + shift, dts: u.dts! + shift })),
    });
    assert.ok(audio.units[0]!.pts! + shift > WRAP, 'the audio starts after the wrap');
    const ts = writeTs([moved(video), moved(audio)]);
    const { file } = await remux([ts]);
    await assertAsFfmpeg(file, await reference(ts));
    const [v, a] = await streamFacts(file);
    assert.ok(Math.abs(v!.start - a!.start) < 0.1, `video at ${v!.start} s, audio at ${a!.start} s`);
  });

  it('keeps every AAC frame when PES boundaries cut ADTS headers and frames (500-byte audio PES)', async () => {
    const es = Buffer.concat(audio.units.map((u) => u.data));
    const frames = adtsFrames(es);
    const start = audio.units[0]!.pts!;
    const packed: StreamOut = { ...asIs(audio), pes: [] };
    for (let at = 0; at < es.length; at += 500) {
      // The PTS of the first frame that starts in the PES (13818-1 2.4.3.7), none when none starts.
      const first = frames.findIndex(([o]) => o >= at && o < at + 500);
      packed.pes.push({
        data: es.subarray(at, at + 500),
        pts: first < 0 ? null : start + (first * 1024 * 90000) / 48000,
      });
    }
    assert.ok(
      frames.some(([o]) => o % 500 > 493),
      'some ADTS header is cut by a PES boundary',
    );
    const ts = writeTs([asIs(video), packed]);
    const { file } = await remux([ts]);
    const packets = await assertAsFfmpeg(file, await reference(ts));
    assert.equal(packets.filter((l) => l.startsWith('1,')).length, frames.length, 'every AAC frame is kept');
    assert.deepEqual(packets, clean, 'the same packets as the stream as ffmpeg muxed it');
  });

  it('reassembles access units that a muxer spread over several PES packets, only the first with timestamps', async () => {
    const cut = (d: Buffer) => Array.from({ length: Math.ceil(d.length / 1000) }, (_, i) => i * 1000);
    const ts = writeTs([split(video, cut), asIs(audio)]);
    const { file } = await remux([ts]);
    assert.deepEqual(await assertAsFfmpeg(file, await reference(ts)), clean);
  });

  it('reassembles access units sent as one PES per NAL unit', async () => {
    const ts = writeTs([split(video, (d) => nalStarts(d)), asIs(audio)]);
    const { file } = await remux([ts]);
    assert.deepEqual(await assertAsFfmpeg(file, await reference(ts)), clean);
  });

  it('joins NAL units and start codes that a PES boundary cuts in two', async () => {
    // Inside a start code (after its first and second byte) and in the middle of a NAL unit; not
    // inside the access unit's first start code, where the PES timestamps would lose their frame.
    const cut = (d: Buffer) =>
      nalStarts(d).flatMap((s, i) => (i === 0 ? [s + 40] : [s + 1 + (i % 2), s + 40 + i * 7]));
    const ts = writeTs([split(video, cut), asIs(audio)]);
    const { file } = await remux([ts], 188 * 3 + 1);
    assert.deepEqual(await assertAsFfmpeg(file, await reference(ts)), clean);
  });

  describe('open GOP', () => {
    let open: { dir: string; files: string[] };
    before(async () => {
      // x264 open GOP: after the first IDR, I pictures with a recovery point SEI and leading B-frames.
      open = await encode(
        'open-gop',
        [
          '-preset',
          'medium',
          '-bf',
          '3',
          '-x264-params',
          'open-gop=1:keyint=25:min-keyint=25:scenecut=0:repeat-headers=1',
        ],
        6,
      );
    });

    it('makes recovery-point I pictures seek points, as ffmpeg does, not only the IDR', async () => {
      const segments = open.files.map((f) => readFileSync(f));
      const { file } = await remux(segments);
      await assertAsFfmpeg(file, await reference(Buffer.concat(segments)));
      const [v] = await streamFacts(file);
      assert.equal(v!.keyframes?.length, 6, `a seek point a second: ${v!.keyframes}`);
    });

    it('gives a stream without any IDR picture its recovery-point seek points', async () => {
      const segments = open.files.slice(1).map((f) => readFileSync(f));
      const { file } = await remux(segments);
      await assertAsFfmpeg(file, await reference(Buffer.concat(segments)));
      const [v] = await streamFacts(file);
      assert.ok((v!.keyframes?.length ?? 0) >= 3, `seek points: ${v!.keyframes}`);
    });
  });

  describe('damage in transport', () => {
    /** The TS with its `n`th packet of `pid` changed by `fault`. */
    const damaged = (pid: number, n: number, fault: (p: TsPacketOut) => TsPacketOut[]) => {
      let seen = 0;
      return writeTs([asIs(video), asIs(audio)], (packets) =>
        packets.flatMap((p) => (p.pid === pid && ++seen === n ? fault(p) : [p])),
      );
    };

    it('leaves out a video frame that lost a TS packet, as ffmpeg -fflags +discardcorrupt does, and says so', async () => {
      const ts = damaged(video.pid, 300, () => []);
      const { file, warnings } = await remux([ts]);
      const packets = await assertAsFfmpeg(file, await reference(ts, true));
      assert.equal(packets.length, clean.length - 1);
      assert.deepEqual(warnings, [
        'MPEG-TS packets damaged in transport (1 lost): 1 video and 0 audio frames left out',
      ]);
    });

    it('leaves out the audio frames of a PES that lost a packet, the rest staying in place', async () => {
      const ts = damaged(audio.pid, 40, () => []);
      const { file, warnings } = await remux([ts]);
      const packets = await assertAsFfmpeg(file, await reference(ts, true));
      const lost = clean.length - packets.length;
      assert.ok(lost > 0);
      assert.match(warnings.join(), new RegExp(`0 video and ${lost} audio frames left out`));
    });

    it('leaves out a frame with a packet whose transport_error_indicator is set', async () => {
      const ts = damaged(video.pid, 300, (p) => {
        const packet = Buffer.from(p.packet);
        packet[1]! |= 0x80;
        return [{ pid: p.pid, packet }];
      });
      const { file, warnings } = await remux([ts]);
      await assertAsFfmpeg(file, await reference(ts, true));
      assert.match(warnings.join(), /1 with transport errors\): 1 video and 0 audio frames left out/);
    });

    it('drops a duplicated packet (13818-1 2.4.3.3 allows one) and keeps its frame whole', async () => {
      // ffmpeg glues the duplicate into the frame and flags it corrupt; the frame is intact here.
      const ts = damaged(video.pid, 300, (p) => [p, p]);
      const { file, warnings } = await remux([ts]);
      assert.deepEqual(await framemd5(file), clean);
      assert.deepEqual(warnings, []);
    });

    it('takes continuity counters that start afresh in every segment as no loss', async () => {
      // Two segments written separately: each one's counters start at 0.
      const half = Math.floor(video.units.length / 2);
      const cut = video.units[half]!.dts!;
      const part = (s: EsStream, first: boolean): StreamOut => ({
        ...asIs(s),
        pes: asIs(s).pes.filter((_p, i) => s.units[i]!.dts! < cut === first),
      });
      const segments = [
        writeTs([part(video, true), part(audio, true)]),
        writeTs([part(video, false), part(audio, false)]),
      ];
      const { file, warnings } = await remux(segments);
      assert.deepEqual(await framemd5(file), clean);
      assert.deepEqual(warnings, []);
    });
  });
});
