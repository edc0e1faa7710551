/**
 * MPEG-TS fuzzing of the demuxer and the in-process remux (src/media/ts-demuxer.ts, h264-framer.ts,
 * video-track.ts, audio-track.ts, src/pipeline/mux/in-process.ts), as test/unit/fuzz.test.ts fuzzes
 * the playlist parser: small ffmpeg-made streams are cut, bit-flipped, truncated inside packets,
 * dropped, duplicated, replayed, reordered, salted with garbage and fed in chunks of every size, and
 * the NativeMerger must:
 *
 * - end every case within 2 s, by resolving or by rejecting with NativeDeclined or a GabeError
 *   (anything else, a TypeError or RangeError, is a bug);
 * - when it resolves, have written an MP4 that an independent reader (helpers/mp4-check.ts) finds
 *   structurally valid, and that ffmpeg reads without error (every 100th such case, and every case of
 *   a small deterministic set);
 * - where the right output is defined, write it: the clean stream's file byte for byte after pure
 *   re-chunking or exact duplicate packets (13818-1 2.4.3.3), its samples after another split into
 *   writes, and after a dropped packet the packets `ffmpeg -fflags +discardcorrupt -c copy` keeps;
 *   damaged or not, one write gives the same file whatever the sizes of its chunks.
 *
 * What the service reads from a track's first bytes (nativeRefusal, firstTsPts) gets every mutated
 * stream too. The sources (made at start with ffmpeg, 3 s each): H.264 without and with B-frames,
 * with three slices a picture and open GOPs; AAC at 48, 44.1 and 22.05 kHz; AAC alone (also fed as
 * a separate audio rendition); a clock that wraps around 2^33; and a re-packetised stream (access
 * units over several PES, ADTS frames cut across PES).
 *
 * The cases run in two worker threads; a watchdog terminates a worker whose case hangs and reports
 * it with its seed and index. Every case is reproducible on its own:
 *
 *   GABE_TS_FUZZ_SEED=<seed> GABE_TS_FUZZ_ONLY=<index> node --import tsx --test test/e2e/ts-fuzz.test.ts
 *
 * GABE_TS_FUZZ_CASES sets the number of cases (default 6,000).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { firstTsPts } from '../../src/media/pts.js';
import { NativeDeclined, NativeMerger, nativeRefusal } from '../../src/pipeline/mux/in-process.js';
import { GabeError } from '../../src/service/errors.js';
import { ffmpegCopy } from '../helpers/differential.js';
import { makeTempDir, runFfmpeg } from '../helpers/fixtures.js';
import {
  failureReport,
  fuzzProgress,
  runFuzzWorkers,
  startFuzzWorker,
  watchFuzzWorker,
} from '../helpers/fuzz-workers.js';
import { Mp4Invalid, readMp4, sampleSummary } from '../helpers/mp4-check.js';
import { int, mulberry32 } from '../helpers/mutate.js';
import {
  makeTsCase,
  packetStarts,
  REFERENCE_RESERVE,
  type TsCase,
  type TsSource,
} from '../helpers/ts-mutate.js';
import { adtsFrames, type PesOut, readEs, type StreamOut, writeTs } from '../helpers/ts-writer.js';

const SEED = Number(process.env['GABE_TS_FUZZ_SEED'] ?? 20_251_206);
const CASES = Number(process.env['GABE_TS_FUZZ_CASES'] ?? 6_000);
const ONLY = process.env['GABE_TS_FUZZ_ONLY'];
const WORKERS = 2;
/** A single case slower than this fails the run. */
const SLOW_MS = 2_000;
/** A case still running after this long is a hang: its worker is terminated. */
const HANG_MS = 15_000;
/** Every this many successful cases of a worker, ffmpeg must read the file without error. */
const FFMPEG_EVERY = 100;
const MAX_REPORTED = 10;

// ---------------------------------------------------------------------------------------------
// One case

class FuzzFailure extends Error {}

interface Feed {
  writes: readonly (readonly Buffer[])[];
  audioOnly?: boolean;
  /** A separate audio rendition, fed to the merger's audio sink alongside the main writes. */
  audioWrites?: readonly (readonly Buffer[])[] | null;
  moovReserve?: number | null;
}

/** 'ok', 'declined', or a GabeError's code; anything else thrown is a FuzzFailure. */
async function merge(feed: Feed, output: string): Promise<string> {
  const merger = new NativeMerger({
    separateAudio: !!feed.audioWrites,
    audioOnly: feed.audioOnly ?? false,
    output,
    moovReserve: feed.moovReserve === undefined ? REFERENCE_RESERVE : feed.moovReserve,
    signal: new AbortController().signal,
  });
  try {
    const play = async (sink: typeof merger.main, writes: Feed['writes']) => {
      for (const w of writes) await sink.write(w);
    };
    await Promise.all([
      play(merger.main, feed.writes),
      feed.audioWrites ? play(merger.audio!, feed.audioWrites) : null,
    ]);
    await merger.finish();
    return 'ok';
  } catch (err) {
    if (err instanceof NativeDeclined) return 'declined';
    if (err instanceof GabeError) return err.code;
    const e = err as Error;
    throw new FuzzFailure(`threw ${e?.name ?? typeof err}: ${e?.stack ?? String(err)}`);
  }
}

/** The file's structure checked by the independent reader; a FuzzFailure says what is wrong. */
function checkFile(file: Buffer, audioOnly: boolean): ReturnType<typeof readMp4> {
  try {
    const mp4 = readMp4(file);
    const handlers = mp4.tracks.map((t) => t.handler);
    if (mp4.tracks.length > 2 || new Set(handlers).size !== handlers.length) {
      throw new Mp4Invalid(`tracks ${handlers.join(',')}`);
    }
    if (audioOnly && handlers.includes('vide')) throw new Mp4Invalid('a video track in an audio-only file');
    for (const t of mp4.tracks) {
      // ffmpeg refuses to copy a packet presented before it is decoded ("pts < dts").
      const early = t.samples.findIndex((x) => x.cts < 0);
      if (early >= 0)
        throw new Mp4Invalid(`track ${t.id} sample ${early + 1} is presented before it is decoded`);
    }
    return mp4;
  } catch (err) {
    if (err instanceof Mp4Invalid) throw new FuzzFailure(`invalid MP4: ${err.message}`);
    throw err;
  }
}

/**
 * What ffmpeg says reading the file (demuxing every packet, or decoding it too): '' when all is well.
 * Without `decode`, what its decoders and parsers say is left out: even a stream copy decodes a few
 * frames to probe the streams, and a flipped bit in a slice is damage to the pictures, not to the file.
 */
function ffmpegErrors(file: string, decode = false): Promise<string> {
  const args = ['-nostdin', '-v', 'error', '-i', file, '-map', '0'];
  if (!decode) args.push('-c', 'copy');
  args.push('-f', 'null', '-');
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-20_000);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const said = err
        .split('\n')
        .filter(
          (line) =>
            line.trim() !== '' && (decode || !/^\[(h264|aac|NULL) @ |^\s+Last message repeated/.test(line)),
        )
        .join('\n');
      resolve(code === 0 ? said : `exit ${code}: ${err.trim()}`);
    });
  });
}

interface Reference {
  bytes: Buffer;
  samples: string[];
}

interface CaseResult {
  outcome: string;
  ms: number;
  /** The output file, when the case wrote one and the caller wants to look at it. */
  file: Buffer | null;
}

/**
 * The demuxer takes a track's bytes "in chunks of any size": whatever the damage, one write cut into
 * chunks must give what the same bytes give in one piece.
 */
async function sameAsWhole(c: TsCase, outcome: string, file: Buffer | null, output: string): Promise<void> {
  if (c.expect !== 'any' || c.writes.length !== 1 || c.writes[0]!.length < 2 || c.audioWrites) return;
  const whole = `${output}.whole.mp4`;
  try {
    const again = await merge({ ...c, writes: [[c.data]] }, whole);
    if (again !== outcome) throw new FuzzFailure(`${outcome} in chunks, ${again} in one piece`);
    if (file && !file.equals(readFileSync(whole))) {
      throw new FuzzFailure('the chunks give another file than the same bytes in one piece');
    }
  } finally {
    await rm(whole, { force: true });
  }
}

/**
 * What the service reads from a track's first bytes before the remux starts (src/pipeline/mux/choose.ts,
 * deferred.ts) must take any damage too: a reason or null, a timestamp or null, never a throw.
 */
function firstLooks(c: TsCase): void {
  const head = Buffer.concat(c.writes[0] ?? []);
  try {
    const reason = nativeRefusal(head, { video: !c.audioOnly, audio: !c.audioWrites });
    if (reason !== null && typeof reason !== 'string') throw new FuzzFailure(`nativeRefusal gave ${reason}`);
  } catch (err) {
    if (err instanceof FuzzFailure) throw err;
    throw new FuzzFailure(`nativeRefusal threw ${(err as Error)?.stack ?? String(err)}`);
  }
  let pts: number | null;
  try {
    pts = firstTsPts(head);
  } catch (err) {
    throw new FuzzFailure(`firstTsPts threw ${(err as Error)?.stack ?? String(err)}`);
  }
  if (pts !== null && !(Number.isInteger(pts) && pts >= 0 && pts < 2 ** 33)) {
    throw new FuzzFailure(`firstTsPts gave ${pts}`);
  }
}

async function runCase(c: TsCase, refs: Map<string, Reference>, output: string): Promise<CaseResult> {
  const started = performance.now();
  try {
    firstLooks(c);
    const outcome = await merge(c, output);
    const ms = performance.now() - started;
    await sameAsWhole(c, outcome, outcome === 'ok' ? readFileSync(output) : null, output);
    if (outcome !== 'ok') {
      if (c.expect !== 'any') throw new FuzzFailure(`${outcome}: but the stream is the clean one's`);
      return { outcome, ms, file: null };
    }
    const file = readFileSync(output);
    const mp4 = checkFile(file, c.audioOnly);
    const ref = refs.get(c.source)!;
    if (c.expect === 'same-bytes' && !file.equals(ref.bytes)) {
      const same = sampleSummary(file, mp4).join('\n') === ref.samples.join('\n');
      throw new FuzzFailure(`the file differs from the clean stream's (${same ? 'same' : 'other'} samples)`);
    }
    if (c.expect === 'same-samples') {
      const mine = sampleSummary(file, mp4);
      for (const [i, line] of mine.entries()) {
        if (line !== ref.samples[i])
          throw new FuzzFailure(`track ${i + 1}'s samples differ from the clean stream's`);
      }
      if (mine.length !== ref.samples.length) throw new FuzzFailure('not the clean stream tracks');
    }
    return { outcome, ms, file };
  } finally {
    await rm(output, { force: true });
    await rm(`${output}.faststart`, { force: true });
  }
}

async function referenceOf(source: TsSource, output: string): Promise<Reference> {
  const data = Buffer.from(source.data.buffer, source.data.byteOffset, source.data.length);
  const outcome = await merge({ writes: [[data]] }, output);
  assert.equal(outcome, 'ok', `the clean ${source.name} remuxes`);
  const bytes = readFileSync(output);
  await rm(output, { force: true });
  return { bytes, samples: sampleSummary(bytes, checkFile(bytes, false)) };
}

// ---------------------------------------------------------------------------------------------
// Worker side

interface WorkerInput {
  sources: TsSource[];
  seed: number;
  first: number;
  step: number;
  cases: number;
  /** [case index, start time (Date.now())] of the case in progress; index -1 between cases. */
  progress: SharedArrayBuffer;
}

interface Failure {
  index: number;
  message: string;
}

interface WorkerResult {
  done: number;
  failures: Failure[];
  slowest: { index: number; ms: number };
  outcomes: Record<string, number>;
  ffmpegChecked: number;
}

async function runCases(input: WorkerInput): Promise<WorkerResult> {
  const progress = new Float64Array(input.progress);
  const dir = mkdtempSync(path.join(tmpdir(), 'gabe-ts-fuzz-'));
  const output = path.join(dir, 'out.mp4');
  let stray: unknown = null;
  process.on('unhandledRejection', (err) => {
    stray ??= err;
  });
  const result: WorkerResult = {
    done: 0,
    failures: [],
    slowest: { index: -1, ms: 0 },
    outcomes: {},
    ffmpegChecked: 0,
  };
  try {
    const refs = new Map<string, Reference>();
    for (const s of input.sources) refs.set(s.name, await referenceOf(s, output));
    let successes = 0;
    for (let i = input.first; i < input.cases && result.failures.length < MAX_REPORTED; i += input.step) {
      progress[0] = i;
      progress[1] = Date.now();
      const c = makeTsCase(input.sources, input.seed, i);
      try {
        const r = await runCase(c, refs, output);
        progress[0] = -1;
        result.outcomes[r.outcome] = (result.outcomes[r.outcome] ?? 0) + 1;
        if (r.ms > result.slowest.ms) result.slowest = { index: i, ms: r.ms };
        if (r.ms > SLOW_MS) result.failures.push({ index: i, message: `took ${r.ms.toFixed(0)} ms` });
        if (r.file && ++successes % FFMPEG_EVERY === 0) {
          await writeFile(output, r.file);
          const errors = await ffmpegErrors(output);
          await rm(output, { force: true });
          result.ffmpegChecked++;
          if (errors) result.failures.push({ index: i, message: `ffmpeg cannot read the file: ${errors}` });
        }
      } catch (err) {
        result.failures.push({ index: i, message: (err as Error).message });
      }
      progress[0] = -1;
      if (stray) {
        result.failures.push({ index: i, message: `an unhandled rejection: ${(stray as Error)?.stack}` });
        stray = null;
      }
      result.done++;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

if (!isMainThread && (workerData as { tsFuzz?: WorkerInput } | null)?.tsFuzz) {
  const input = (workerData as { tsFuzz: WorkerInput }).tsFuzz;
  void runCases(input).then(
    (r) => parentPort?.postMessage(r),
    (err: Error) => {
      const index = new Float64Array(input.progress)[0] ?? -1;
      const failure = { index, message: `the worker failed: ${err?.stack ?? String(err)}` };
      const r: WorkerResult = {
        done: 0,
        failures: [failure],
        slowest: { index: -1, ms: 0 },
        outcomes: {},
        ffmpegChecked: 0,
      };
      parentPort?.postMessage(r);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Main side: the sources

const VIDEO = (size: string, rate: number) => ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}`];
const TONE = (rate: number) => ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${rate}`];
const AAC = ['-c:a', 'aac', '-b:a', '64k'];

/** A TS made by ffmpeg's own mpegts muxer. */
async function encode(name: string, args: string[], seconds = 3): Promise<Buffer> {
  const file = path.join(await makeTempDir(`ts-fuzz-${name}`), `${name}.ts`);
  await runFfmpeg([...args, '-t', String(seconds), '-f', 'mpegts', file]);
  return readFileSync(file);
}

/**
 * The same streams packed as muxers other than ffmpeg's pack them: each access unit split over one to
 * four PES with PES_packet_length set (cut anywhere, inside NAL units and start codes too; only the
 * first has timestamps), and the ADTS frames regrouped into PES of 100-3000 bytes, cut across frames
 * and headers, each stamped with the time of the first frame that starts in it (13818-1 2.4.3.7).
 */
function repacketise(ts: Buffer, seed: number): Buffer {
  const rng = mulberry32(seed);
  const out: StreamOut[] = readEs(ts).map((s) => {
    const pes: PesOut[] = [];
    if (s.type === 0x1b) {
      for (const u of s.units) {
        const cuts = [
          ...new Set(Array.from({ length: int(rng, 4) }, () => 1 + int(rng, u.data.length - 1))),
        ].sort((a, b) => a - b);
        const bounds = [0, ...cuts, u.data.length];
        for (let i = 0; i + 1 < bounds.length; i++) {
          const data = u.data.subarray(bounds[i], bounds[i + 1]);
          pes.push(
            i === 0 ? { data, pts: u.pts, dts: u.dts, bounded: true } : { data, pts: null, bounded: true },
          );
        }
      }
    } else {
      const frames: { at: number; pts: number }[] = [];
      const parts: Buffer[] = [];
      let offset = 0;
      for (const u of s.units) {
        const rate = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050][(u.data[2]! >> 2) & 0x0f]!;
        for (const [k, [at]] of adtsFrames(u.data).entries()) {
          frames.push({ at: offset + at, pts: u.pts! + Math.round((k * 1024 * 90000) / rate) });
        }
        parts.push(u.data);
        offset += u.data.length;
      }
      const es = Buffer.concat(parts);
      let f = 0;
      for (let at = 0; at < es.length; ) {
        const end = Math.min(es.length, at + 100 + int(rng, 2900));
        while (f < frames.length && frames[f]!.at < at) f++;
        const first = f < frames.length && frames[f]!.at < end ? frames[f]!.pts : null;
        pes.push({ data: es.subarray(at, end), pts: first });
        at = end;
      }
    }
    return { pid: s.pid, type: s.type, streamId: s.streamId, pes };
  });
  return writeTs(out);
}

async function makeSources(): Promise<TsSource[]> {
  const x264 = (preset: string, gop: number) => ['-c:v', 'libx264', '-preset', preset, '-g', String(gop)];
  const [plain, bframes, audio, slices, wrap] = await Promise.all([
    encode('plain', [...VIDEO('160x90', 25), ...TONE(48000), ...x264('ultrafast', 25), ...AAC]),
    encode('bframes', [...VIDEO('192x108', 30), ...TONE(44100), ...x264('veryfast', 30), '-bf', '2', ...AAC]),
    encode('audio', [...TONE(48000), ...AAC]),
    // 2^33 / 90000 = 95443.7 s: the 90 kHz clock wraps around 1.7 s into the stream.
    // Three slices per picture and open GOPs (recovery point SEIs), mono 22.05 kHz.
    encode('slices', [
      ...VIDEO('160x90', 25),
      ...TONE(22050),
      ...[
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-x264-params',
        'slices=3:open-gop=1:keyint=30:bframes=2',
      ],
      ...['-c:a', 'aac', '-ac', '1', '-b:a', '32k'],
    ]),
    encode('wrap', [
      ...VIDEO('160x90', 25),
      ...TONE(48000),
      ...x264('ultrafast', 25),
      ...AAC,
      '-output_ts_offset',
      '95442',
    ]),
  ]);
  return [
    { name: 'h264+aac48k', data: plain },
    { name: 'h264-bframes+aac44.1k', data: bframes },
    { name: 'aac48k-only', data: audio, rendition: true },
    { name: 'h264+aac48k-wrapping', data: wrap },
    { name: 'h264-slices-opengop+aac22k-mono', data: slices },
    { name: 'repacketised', data: repacketise(plain, 7) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Main side: the workers

function describeCase(c: TsCase): string {
  return (
    `case ${c.index} (seed ${SEED}): ${c.source} + [${c.ops.join(', ')}], expect ${c.expect}` +
    `${c.audioOnly ? ', audio only' : ''}${c.audioWrites ? ', separate audio' : ''}, moov reserve ${c.moovReserve}\n` +
    `replay: GABE_TS_FUZZ_SEED=${SEED} GABE_TS_FUZZ_ONLY=${c.index} node --import tsx --test test/e2e/ts-fuzz.test.ts`
  );
}

/** Runs one worker on this file; a case running longer than HANG_MS is reported as a hang. */
function runWorker(input: WorkerInput): Promise<WorkerResult> {
  const worker = startFuzzWorker(import.meta.url, 'tsFuzz', input);
  return watchFuzzWorker(worker, input.progress, HANG_MS, (index, running) => ({
    done: 0,
    failures: [{ index, message: `hang: still running after ${running} ms` }],
    slowest: { index, ms: running },
    outcomes: {},
    ffmpegChecked: 0,
  }));
}

// ---------------------------------------------------------------------------------------------
// Main side: the tests

/** Every packet of every stream (timestamps, duration, size, MD5), as ffmpeg's demuxer reads the file. */
async function framemd5(file: string): Promise<string> {
  return (await runFfmpeg(['-i', file, '-map', '0', '-c', 'copy', '-f', 'framemd5', '-'])).toString();
}

const chunksOf = (data: Buffer, size: number) => {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) out.push(data.subarray(at, at + size));
  return out;
};

const pidOf = (b: Buffer, p: number) => ((b[p + 1]! & 0x1f) << 8) | b[p + 2]!;
const unitStart = (b: Buffer, p: number) => (b[p + 1]! & 0x40) !== 0;

/** MD5s of the samples of a file's video and audio tracks, in order. */
function sampleHashes(file: Buffer): { vide: string[]; soun: string[] } {
  const out = { vide: [] as string[], soun: [] as string[] };
  for (const t of checkFile(file, false).tracks) {
    const list = t.handler === 'vide' ? out.vide : out.soun;
    for (const x of t.samples)
      list.push(
        createHash('md5')
          .update(file.subarray(x.offset, x.offset + x.size))
          .digest('hex'),
      );
  }
  return out;
}

/** The streams of `ts` packed again with every PES bounded, video access units split as `split` says. */
function repack(ts: Buffer, split: (u: Buffer) => number[]): Buffer {
  return writeTs(
    readEs(ts).map((s) => ({
      pid: s.pid,
      type: s.type,
      streamId: s.streamId,
      pes: s.units.flatMap((u): PesOut[] => {
        const cuts = s.type === 0x1b ? split(u.data) : [];
        const bounds = [0, ...cuts, u.data.length];
        return bounds.slice(0, -1).map((from, i) => ({
          data: u.data.subarray(from, bounds[i + 1]),
          pts: i === 0 ? u.pts : null,
          dts: i === 0 ? u.dts : null,
          bounded: true,
        }));
      }),
    })),
  );
}

/** `ts` without the packets of `pid` from its `nth` unit start on: `count` packets, or the whole PES. */
function withoutPackets(ts: Buffer, pid: number, nth: number, count: number | 'pes'): Buffer {
  const ps = packetStarts(ts).filter((p) => pidOf(ts, p) === pid);
  const starts = ps.filter((p) => unitStart(ts, p));
  const from = ps.indexOf(starts[nth]!);
  const to = count === 'pes' ? ps.indexOf(starts[nth + 1]!) : from + count;
  const gone = new Set(ps.slice(from, to));
  return Buffer.concat(
    packetStarts(ts)
      .filter((p) => !gone.has(p))
      .map((p) => ts.subarray(p, p + 188)),
  );
}

if (isMainThread) {
  describe('MPEG-TS fuzzing of the demuxer and the in-process remux', () => {
    let sources: TsSource[] = [];
    let dir = '';
    const refs = new Map<string, Reference>();
    const source = (name: string) => {
      const s = sources.find((x) => x.name === name)!;
      return Buffer.from(s.data.buffer, s.data.byteOffset, s.data.length);
    };
    const out = (name: string) => path.join(dir, name);

    before(async () => {
      sources = await makeSources();
      dir = await makeTempDir('ts-fuzz-out');
      for (const s of sources) refs.set(s.name, await referenceOf(s, out('ref.mp4')));
    });

    it('remuxes each clean source to the packets of ffmpeg -c copy, the re-packetised one to its original samples', async () => {
      for (const s of sources) {
        const ts = out(`${s.name}.ts`);
        const mine = out(`${s.name}.mp4`);
        await writeFile(ts, s.data);
        await writeFile(mine, refs.get(s.name)!.bytes);
        const ref = out(`${s.name}-ffmpeg.mp4`);
        await ffmpegCopy(ts, ref);
        assert.equal(await framemd5(mine), await framemd5(ref), s.name);
        assert.equal(await ffmpegErrors(mine, true), '', `${s.name} decodes without error`);
      }
      assert.deepEqual(refs.get('repacketised')!.samples, refs.get('h264+aac48k')!.samples);
      // The re-packetised stream does split access units and cut ADTS frames across PES.
      const es = readEs(source('repacketised'));
      assert.ok(es[0]!.units.length > readEs(source('h264+aac48k'))[0]!.units.length);
    });

    it('(a) writes a byte-identical file whatever chunk sizes the bytes arrive in', async () => {
      for (const s of sources) {
        for (const size of [1, 7, 187, 188, 189, 1316, 65536]) {
          const r = await runCase(
            {
              index: -1,
              source: s.name,
              ops: [],
              data: source(s.name),
              writes: [chunksOf(source(s.name), size)],
              expect: 'same-bytes',
              audioOnly: false,
              audioWrites: null,
              moovReserve: REFERENCE_RESERVE,
            },
            refs,
            out('a.mp4'),
          );
          assert.equal(r.outcome, 'ok', `${s.name} in chunks of ${size}`);
        }
      }
    });

    it('(b) drops exact duplicate packets (PAT, PMT, PES starts, continuations), also where a chunk starts or ends', async () => {
      for (const name of [
        'h264+aac48k',
        'h264-bframes+aac44.1k',
        'aac48k-only',
        'repacketised',
        'h264+aac48k-wrapping',
      ]) {
        const clean = source(name);
        const ps = packetStarts(clean);
        const pick = (f: (p: number) => boolean, nth = 0) => ps.filter(f)[nth];
        const [vpid, apid] = [0x100, 0x101];
        const chosen = [
          pick((p) => pidOf(clean, p) === 0),
          pick((p) => pidOf(clean, p) === 0x1000, 1),
          pick((p) => pidOf(clean, p) === vpid && unitStart(clean, p), 3),
          pick((p) => pidOf(clean, p) === vpid && !unitStart(clean, p), 10),
          pick((p) => pidOf(clean, p) === apid && unitStart(clean, p), 2),
          pick((p) => pidOf(clean, p) === apid && !unitStart(clean, p), 5),
          ps.at(-1),
        ].filter((p): p is number => p !== undefined);
        assert.ok(chosen.length >= 5, `${name}: ${chosen.length} packets to repeat`);
        for (const p of chosen) {
          const data = Buffer.concat([
            clean.subarray(0, p + 188),
            clean.subarray(p, p + 188),
            clean.subarray(p + 188),
          ]);
          // Whole; chunks that start at the repeat; chunks that cut it in two.
          for (const writes of [
            [[data]],
            [[data.subarray(0, p + 188), data.subarray(p + 188)]],
            [chunksOf(data, 100)],
          ]) {
            const c: TsCase = {
              index: -1,
              source: name,
              ops: [`duplicate@${p}`],
              data,
              writes,
              expect: 'same-bytes',
              audioOnly: false,
              audioWrites: null,
              moovReserve: REFERENCE_RESERVE,
            };
            await assert.doesNotReject(
              runCase(c, refs, out('b.mp4')),
              `${name}: packet at ${p} repeated, ${writes[0]!.length} chunks`,
            );
          }
        }
      }
    });

    it('(c) after a dropped packet keeps the packets ffmpeg -fflags +discardcorrupt keeps', async () => {
      const cases: [string, (b: Buffer, p: number) => boolean, number][] = [
        ['h264+aac48k', (b, p) => pidOf(b, p) === 0x100 && !unitStart(b, p), 40],
        ['h264+aac48k', (b, p) => pidOf(b, p) === 0x100 && unitStart(b, p), 20],
        ['h264+aac48k', (b, p) => pidOf(b, p) === 0x101 && !unitStart(b, p), 7],
        ['h264-bframes+aac44.1k', (b, p) => pidOf(b, p) === 0x100 && !unitStart(b, p), 100],
        ['h264-bframes+aac44.1k', (b, p) => pidOf(b, p) === 0x101 && unitStart(b, p), 3],
        ['aac48k-only', (b, p) => pidOf(b, p) === 0x100 && !unitStart(b, p), 12],
      ];
      for (const [name, which, nth] of cases) {
        const clean = source(name);
        const p = packetStarts(clean).filter((q) => which(clean, q))[nth];
        assert.ok(p !== undefined, `${name}: no packet ${nth} to drop`);
        const data = Buffer.concat([clean.subarray(0, p), clean.subarray(p + 188)]);
        const ts = out('c.ts');
        await writeFile(ts, data);
        const mine = out('c.mp4');
        assert.equal(await merge({ writes: [chunksOf(data, 4096)] }, mine), 'ok');
        checkFile(readFileSync(mine), false);
        const ref = await ffmpegCopy(ts, out('c-ffmpeg.mp4'), ['-fflags', '+discardcorrupt']);
        assert.equal(await framemd5(mine), await framemd5(ref), `${name} without the packet at ${p}`);
      }
    });

    it('gives valid files that ffmpeg reads without error for a deterministic set of 40 mutated streams', async () => {
      const outcomes: Record<string, number> = {};
      for (let i = 0; i < 40; i++) {
        const c = makeTsCase(sources, 1, i);
        const r = await runCase(c, refs, out('d.mp4')).catch((err: Error) => {
          throw new Error(`${err.message}\n${describeCase(c).replace(`seed ${SEED}`, 'seed 1')}`);
        });
        outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
        if (!r.file) continue;
        await writeFile(out('d.mp4'), r.file);
        assert.equal(await ffmpegErrors(out('d.mp4')), '', `case ${i} of seed 1: ${c.ops.join(', ')}`);
      }
      assert.ok((outcomes['ok'] ?? 0) >= 20, JSON.stringify(outcomes));
    });

    it('regression: an access unit whose PES ends right after a start code (its NAL header in the next PES) stays one sample', async () => {
      // Every access unit split in two right after the start code of its second NAL unit: the first
      // PES ends with 00 00 00 01, the second begins with the slice's NAL header.
      const streams = readEs(source('h264+aac48k')).map((s) => ({
        pid: s.pid,
        type: s.type,
        streamId: s.streamId,
        pes: s.units.flatMap((u): PesOut[] => {
          const second = u.data.indexOf(Buffer.from([0, 0, 1]), u.data.indexOf(Buffer.from([0, 0, 1])) + 3);
          if (s.type !== 0x1b || second < 0) return [{ data: u.data, pts: u.pts, dts: u.dts }];
          return [
            { data: u.data.subarray(0, second + 3), pts: u.pts, dts: u.dts, bounded: true },
            { data: u.data.subarray(second + 3), pts: null, bounded: true },
          ];
        }),
      }));
      const data = writeTs(streams);
      assert.equal(await merge({ writes: [[data]] }, out('split.mp4')), 'ok');
      const file = readFileSync(out('split.mp4'));
      assert.deepEqual(sampleSummary(file, checkFile(file, false)), refs.get('h264+aac48k')!.samples);
    });

    it('regression: a packet repeated right after itself across a chunk or a write boundary is dropped', async () => {
      const clean = source('h264+aac48k');
      const p = packetStarts(clean).filter((q) => pidOf(clean, q) === 0x100 && !unitStart(clean, q))[30]!;
      const head = clean.subarray(0, p + 188);
      const tail = Buffer.concat([clean.subarray(p, p + 188), clean.subarray(p + 188)]);
      for (const writes of [
        [[head, tail]],
        [[head], [tail]],
        [[head.subarray(0, -5)], [head.subarray(-5), tail]],
      ]) {
        assert.equal(await merge({ writes }, out('dup.mp4')), 'ok');
        assert.ok(readFileSync(out('dup.mp4')).equals(refs.get('h264+aac48k')!.bytes) || writes.length > 1);
        const file = readFileSync(out('dup.mp4'));
        assert.deepEqual(sampleSummary(file, checkFile(file, false)), refs.get('h264+aac48k')!.samples);
      }
    });

    it('regression: a picture whose DTS had to be moved forward is not presented before it is decoded', async () => {
      // The 12th video PES stamped 60 ms before the 11th: its DTS runs backwards and is moved to the
      // tick after the one before; its PTS must go along, as ffmpeg's muxer does (pts >= dts).
      const data = Buffer.from(source('h264+aac48k'));
      const starts = packetStarts(data).filter((p) => pidOf(data, p) === 0x100 && unitStart(data, p));
      const pesAt = (p: number) => p + 4 + ((data[p + 3]! & 0x20) !== 0 ? 1 + data[p + 4]! : 0);
      const ptsOf = (p: number) => {
        const at = pesAt(p) + 9;
        return (
          ((data[at]! >> 1) & 7) * 2 ** 30 +
          ((data.readUInt16BE(at + 1) >> 1) << 15) +
          (data.readUInt16BE(at + 3) >> 1)
        );
      };
      const at = pesAt(starts[11]!) + 9;
      assert.equal(data[pesAt(starts[11]!) + 7]! & 0xc0, 0x80, 'a PTS without a DTS');
      const v = ptsOf(starts[10]!) - 5400;
      data[at] = 0x21 | (Math.floor(v / 2 ** 30) << 1);
      data.writeUInt16BE((((v >> 15) & 0x7fff) << 1) | 1, at + 1);
      data.writeUInt16BE(((v & 0x7fff) << 1) | 1, at + 3);
      assert.equal(ptsOf(starts[11]!), v);
      const file = out('backwards.mp4');
      assert.equal(await merge({ writes: [[data]] }, file), 'ok');
      checkFile(readFileSync(file), false);
      assert.equal(await ffmpegErrors(file), '');
      await writeFile(out('backwards.ts'), data);
      const ref = await ffmpegCopy(out('backwards.ts'), out('backwards-ffmpeg.mp4'));
      assert.equal(await framemd5(file), await framemd5(ref));
    });

    it('regression: a PTS more than 2^31 ticks after its DTS (a flipped high bit) is declined, not wrapped into a negative offset', async () => {
      // ffmpeg's mp4 muxer refuses such a pair too ("pts/dts pair unsupported"): ctts holds 32 bits.
      const data = Buffer.from(source('h264-bframes+aac44.1k'));
      const withDts = packetStarts(data).filter((p) => {
        if (pidOf(data, p) !== 0x100 || !unitStart(data, p)) return false;
        const pes = p + 4 + ((data[p + 3]! & 0x20) !== 0 ? 1 + data[p + 4]! : 0);
        return (data[pes + 7]! & 0xc0) === 0xc0;
      });
      const p = withDts[5]!;
      const pes = p + 4 + ((data[p + 3]! & 0x20) !== 0 ? 1 + data[p + 4]! : 0);
      assert.equal(data[pes + 9]! & 0x04, 0, 'bit 31 of the PTS is clear');
      data[pes + 9]! |= 0x04;
      assert.equal(await merge({ writes: [[data]] }, out('far.mp4')), 'declined');
    });

    it('regression: packets lost between the PES of one access unit cost that frame, whatever the chunk sizes', async () => {
      // Each access unit over three bounded PES; the first packet of a middle PES is lost, so the
      // rest of that PES comes without its start. The frame must be left out, not glued together
      // from what is left, and the file must not depend on where the chunks were cut.
      const clean = repack(source('h264+aac48k'), (u) => [
        Math.floor(u.length / 3),
        Math.floor((2 * u.length) / 3),
      ]);
      const ref = out('three.mp4');
      assert.equal(await merge({ writes: [[clean]] }, ref), 'ok');
      const before = sampleHashes(readFileSync(ref));
      assert.deepEqual(before, sampleHashes(refs.get('h264+aac48k')!.bytes));
      const damaged = withoutPackets(clean, 0x100, 3 * 40 + 1, 1);
      const files: Buffer[] = [];
      for (const size of [damaged.length, 188, 1000]) {
        assert.equal(await merge({ writes: [chunksOf(damaged, size)] }, out('lost.mp4')), 'ok');
        files.push(readFileSync(out('lost.mp4')));
      }
      for (const f of files.slice(1)) assert.ok(f.equals(files[0]!), 'the same file in chunks');
      const after = sampleHashes(files[0]!);
      assert.deepEqual(after.soun, before.soun);
      assert.equal(after.vide.length, before.vide.length - 1);
      for (const h of after.vide) assert.ok(before.vide.includes(h), 'no frame glued from damaged pieces');
    });

    it('regression: a whole PES lost (bounded, one per access unit) costs only its own frame', async () => {
      const clean = repack(source('h264+aac48k'), () => []);
      const ref = out('bounded.mp4');
      assert.equal(await merge({ writes: [[clean]] }, ref), 'ok');
      const before = sampleHashes(readFileSync(ref));
      for (const size of [clean.length, 188]) {
        const damaged = withoutPackets(clean, 0x100, 40, 'pes');
        assert.equal(await merge({ writes: [chunksOf(damaged, size)] }, out('bounded-lost.mp4')), 'ok');
        const after = sampleHashes(readFileSync(out('bounded-lost.mp4')));
        assert.deepEqual(after.soun, before.soun);
        assert.deepEqual(after.vide, [...before.vide.slice(0, 40), ...before.vide.slice(41)]);
      }
    });

    it('regression: an audio PES lost after one that ended inside an ADTS frame does not glue the frame together', async () => {
      // The repacketised source cuts ADTS frames across PES: losing the PES after a cut must not
      // join the first part of a frame with bytes from further on.
      const clean = source('repacketised');
      const before = sampleHashes(refs.get('repacketised')!.bytes);
      const audio = packetStarts(clean).filter((p) => pidOf(clean, p) === 0x101);
      const starts = audio.filter((p) => unitStart(clean, p)).map((p) => audio.indexOf(p));
      // A loss of 16 packets does not show in the 4-bit continuity_counter: such PES are left out.
      const visible = starts
        .slice(2, -2)
        .flatMap((at, i) => ((starts[i + 3]! - at) % 16 !== 0 ? [i + 2] : []));
      assert.ok(visible.length >= 4, `${visible.length} PES to lose`);
      for (const nth of visible) {
        const damaged = withoutPackets(clean, 0x101, nth, 'pes');
        for (const size of [damaged.length, 188]) {
          assert.equal(await merge({ writes: [chunksOf(damaged, size)] }, out('audio-lost.mp4')), 'ok');
          const after = sampleHashes(readFileSync(out('audio-lost.mp4')));
          assert.deepEqual(after.vide, before.vide);
          assert.ok(after.soun.length < before.soun.length, `PES ${nth}: frames lost`);
          for (const h of after.soun)
            assert.ok(before.soun.includes(h), `PES ${nth}, chunks of ${size}: no glued frame`);
        }
      }
    });

    it('regression: audio frames lost with a whole PES are counted in the damage the merger reports', async () => {
      // (ffmpeg's own audio PES are 16 packets long, a loss the 4-bit counter cannot see: the
      // re-packetised stream's are not.)
      const clean = source('repacketised');
      const audio = packetStarts(clean).filter((p) => pidOf(clean, p) === 0x101);
      const starts = audio.filter((p) => unitStart(clean, p)).map((p) => audio.indexOf(p));
      const nth = starts.findIndex(
        (at, i) => i > 2 && i + 1 < starts.length && (starts[i + 1]! - at) % 16 !== 0,
      );
      assert.ok(nth > 0);
      const damaged = withoutPackets(clean, 0x101, nth, 'pes');
      const merger = new NativeMerger({
        separateAudio: false,
        output: out('counted.mp4'),
        moovReserve: REFERENCE_RESERVE,
        signal: new AbortController().signal,
      });
      await merger.main.write([damaged]);
      await merger.finish();
      const lostFrames =
        sampleHashes(refs.get('h264+aac48k')!.bytes).soun.length -
        sampleHashes(readFileSync(out('counted.mp4'))).soun.length;
      assert.ok(lostFrames > 0);
      assert.equal(merger.damage?.droppedAudio, lostFrames);
      assert.match(merger.warnings.join('\n'), new RegExp(`0 video and ${lostFrames} audio frames left out`));
    });

    if (ONLY !== undefined) {
      it(`replays case ${ONLY} of seed ${SEED}`, async () => {
        const c = makeTsCase(sources, SEED, Number(ONLY));
        process.stdout.write(`${describeCase(c)}\n`);
        const r = await runCase(c, refs, out('only.mp4'));
        process.stdout.write(`outcome: ${r.outcome} in ${r.ms.toFixed(0)} ms\n`);
        if (r.file) {
          await writeFile(out('only.mp4'), r.file);
          assert.equal(await ffmpegErrors(out('only.mp4')), '');
        }
        assert.ok(r.ms < SLOW_MS, `took ${r.ms.toFixed(0)} ms`);
      });
      return;
    }

    it(`remuxes ${CASES} mutated streams (seed ${SEED}) to valid files or a clear refusal, each within ${SLOW_MS} ms`, async (t) => {
      const { results, seconds, done, slowest, outcomes, byCase } = await runFuzzWorkers(WORKERS, (first) =>
        runWorker({ sources, seed: SEED, first, step: WORKERS, cases: CASES, progress: fuzzProgress() }),
      );
      const checked = results.reduce((n, r) => n + r.ffmpegChecked, 0);
      t.diagnostic(`${done} cases in ${seconds.toFixed(1)} s, seed ${SEED}`);
      t.diagnostic(`slowest case: ${slowest.index} (${slowest.ms.toFixed(0)} ms)`);
      t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}; ${checked} files read by ffmpeg`);
      const report = failureReport(byCase, MAX_REPORTED, (index) =>
        describeCase(makeTsCase(sources, SEED, index)),
      );
      assert.equal(byCase.size, 0, `${byCase.size} failing case(s):\n\n${report}`);
      assert.ok(done >= CASES, `only ${done} of ${CASES} cases ran`);
      assert.ok((outcomes['ok'] ?? 0) > CASES / 4, 'most cases give a file');
    });
  });
}
