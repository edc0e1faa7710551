/**
 * Playlist fuzzing: thousands of mutated playlists (inline playlists shaped like the test fixtures'
 * plus every file of the shared conformance corpus, when present) go through everything the service
 * does with a playlist before the network: parsePlaylist, then selectVariant/selectAudioRendition for
 * masters or assertDownloadable/planTrack for media, and toInfoJson/formatInfoTable for both.
 *
 * Proven: nothing throws anything but a GabeError (no TypeError/RangeError, also not one hidden by
 * parsePlaylist's safety net), the model keeps its invariants, and no input takes more than 2 s.
 *
 * The cases run in two worker threads (the CI machine has 2 cores). A watchdog in the main thread
 * terminates a worker whose current case runs for too long, so a hang is reported with its case
 * instead of blocking the suite. Every case is reproducible from the seed and its index:
 *
 *   GABE_FUZZ_SEED=<seed> GABE_FUZZ_ONLY=<index> node --import tsx --test test/unit/fuzz.test.ts
 *
 * GABE_FUZZ_CASES sets the number of cases (default 12,000).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { planTrack } from '../../src/pipeline/hls/track-plan.js';
import { formatInfoTable, toInfoJson } from '../../src/playlist/info.js';
import type { MasterPlaylist, MediaPlaylist, Playlist } from '../../src/playlist/model.js';
import { assertDownloadable, detectDrm, parsePlaylist } from '../../src/playlist/parser.js';
import { selectAudioRendition, selectVariant } from '../../src/playlist/selection.js';
import { GabeError } from '../../src/service/errors.js';
import {
  failureReport,
  fuzzProgress,
  runFuzzWorkers,
  startFuzzWorker,
  watchFuzzWorker,
} from '../helpers/fuzz-workers.js';
import { type FuzzCase, makeCase, type Source } from '../helpers/mutate.js';

const SEED = Number(process.env['GABE_FUZZ_SEED'] ?? 20_251_125);
const CASES = Number(process.env['GABE_FUZZ_CASES'] ?? 12_000);
const ONLY = process.env['GABE_FUZZ_ONLY'];
const WORKERS = 2;
/** A single case slower than this fails the run. */
const SLOW_MS = 2_000;
/** A case still running after this long is a hang: its worker is terminated. */
const HANG_MS = 15_000;
const MAX_REPORTED = 10;

// ---------------------------------------------------------------------------------------------
// Sources

const BASE = 'https://cdn.example.com/vod/show/master.m3u8';

/** Playlists shaped like the ones test/helpers/fixtures.ts makes with ffmpeg, and a few more. */
const INLINE: readonly Source[] = [
  {
    name: 'inline/master',
    base: BASE,
    text: `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=420000,AVERAGE-BANDWIDTH=300000,RESOLUTION=320x180,CODECS="avc1.42c00d,mp4a.40.2",FRAME-RATE=25.000
v0/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.42c01e,mp4a.40.2",FRAME-RATE=25.000
v1/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=1500000,RESOLUTION=960x540,CODECS="avc1.42c01f,mp4a.40.2",FRAME-RATE=25.000
v2/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,RESOLUTION=320x180,CODECS="avc1.42c00d",URI="v0/iframes.m3u8"
`,
  },
  {
    name: 'inline/separate-audio',
    base: BASE,
    text: `#EXTM3U
#EXT-X-VERSION:4
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/en/index.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Deutsch",LANGUAGE="de",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="2",URI="audio/de/index.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",URI="subs/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.42c01e,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"
video/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=130000,CODECS="mp4a.40.2",AUDIO="aud"
audio/en/index.m3u8
`,
  },
  {
    name: 'inline/ts',
    text: `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:2.000000,
seg_000.ts
#EXTINF:2.000000,
seg_001.ts
#EXTINF:2.000000,
seg_002.ts
#EXT-X-ENDLIST
`,
  },
  {
    name: 'inline/aes',
    base: 'https://cdn.example.com/aes/index.m3u8',
    text: `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-KEY:METHOD=AES-128,URI="key0.key"
#EXTINF:2.000000,
seg_000.ts
#EXTINF:2.000000,
seg_001.ts
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example.com/key1.key",IV=0x0123456789abcdef0123456789abcdef
#EXTINF:2.000000,
seg_002.ts
#EXT-X-KEY:METHOD=NONE
#EXTINF:2.000000,
seg_003.ts
#EXT-X-ENDLIST
`,
  },
  {
    name: 'inline/fmp4',
    base: 'https://cdn.example.com/fmp4/index.m3u8',
    text: `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000000,
seg_000.m4s
#EXTINF:2.000000,
seg_001.m4s
#EXT-X-MAP:URI="init2.mp4",BYTERANGE="720@0"
#EXTINF:1.960000,
seg_002.m4s
#EXT-X-ENDLIST
`,
  },
  {
    name: 'inline/byterange',
    text: `#EXTM3U
#EXT-X-VERSION:4
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:2.000000,
#EXT-X-BYTERANGE:152904@0
index.ts
#EXTINF:2.000000,
#EXT-X-BYTERANGE:140564
index.ts
#EXTINF:2.000000,
#EXT-X-BYTERANGE:141692@293468
index.ts
#EXT-X-ENDLIST
`,
  },
  {
    name: 'inline/ll-hls-drm-variables',
    base: 'https://cdn.example.com/live/index.m3u8?token=t0k3n',
    text: `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-DEFINE:QUERYPARAM="token"
#EXT-X-DEFINE:NAME="host",VALUE="https://media.example.com"
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,PART-HOLD-BACK=3.0
#EXT-X-PART-INF:PART-TARGET=1.0
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-SKIP:SKIPPED-SEGMENTS=3
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key-id",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"
#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="data:text/plain;base64,AAAA",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
#EXT-X-PROGRAM-DATE-TIME:2026-11-25T11:37:10.858Z
#EXTINF:4.00008,
{$host}/fileSequence266.mp4?token={$token}
#EXT-X-DISCONTINUITY
#EXT-X-GAP
#EXTINF:4.00008,
fileSequence267.mp4
#EXT-X-PART:DURATION=1.0,URI="filePart268.0.mp4",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart268.1.mp4"
#EXT-X-RENDITION-REPORT:URI="../1M/waitForMSN.php",LAST-MSN=273,LAST-PART=2
`,
  },
  {
    name: 'inline/iptv',
    text: `#EXTM3U url-tvg="http://epg.example.com/guide.xml"
#EXTINF:-1 tvg-id="one" tvg-logo="http://x/logo.png" group-title="News",Channel One
http://stream.example.com/one.m3u8
#EXTINF:-1,Channel Two
http://stream.example.com/two.ts
`,
  },
];

interface ManifestEntry {
  file: string;
  base_uri?: string;
}

function corpusSources(): Source[] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dir = path.resolve(here, '../../../shared/conformance/hls');
  const manifest = path.join(dir, 'manifest.json');
  if (!existsSync(manifest)) return [];
  const entries = JSON.parse(readFileSync(manifest, 'utf8')) as ManifestEntry[];
  return entries.map((e) => ({
    name: `corpus/${e.file}`,
    text: readFileSync(path.join(dir, e.file), 'utf8'),
    ...(e.base_uri === undefined ? {} : { base: e.base_uri }),
  }));
}

// ---------------------------------------------------------------------------------------------
// What one case exercises

class FuzzFailure extends Error {}

/** A GabeError is the only acceptable failure; the parser's safety net must not have been needed. */
function expectGabeError(err: unknown, step: string): string {
  if (!(err instanceof GabeError)) {
    const e = err as Error;
    throw new FuzzFailure(`${step} threw ${e?.name ?? typeof err}: ${e?.stack ?? String(err)}`);
  }
  if (err.message.startsWith('the playlist could not be parsed:')) {
    const cause = err.cause as Error | undefined;
    throw new FuzzFailure(
      `${step}: an unforeseen error reached the safety net: ${cause?.stack ?? err.message}`,
    );
  }
  return err.code;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new FuzzFailure(`invariant broken: ${what}`);
}

function checkMedia(p: MediaPlaylist): void {
  check(Number.isSafeInteger(p.mediaSequence), `mediaSequence ${p.mediaSequence}`);
  for (const [i, s] of p.segments.entries()) {
    check(s.duration === null || (Number.isFinite(s.duration) && s.duration >= 0), `segment ${i} duration`);
    check(Number.isFinite(s.msn), `segment ${i} msn ${s.msn}`);
    if (s.byterange) {
      const { offset, length } = s.byterange;
      check(Number.isSafeInteger(offset) && offset >= 0, `segment ${i} byte range offset ${offset}`);
      check(Number.isSafeInteger(length) && length >= 0, `segment ${i} byte range length ${length}`);
      check(Number.isSafeInteger(offset + length), `segment ${i} byte range end`);
    }
    check(typeof s.uri === 'string', `segment ${i} uri`);
    for (const k of s.keys) check(typeof k.method === 'string' && k.method !== 'NONE', `segment ${i} key`);
  }
  try {
    assertDownloadable(p);
  } catch (err) {
    expectGabeError(err, 'assertDownloadable');
  }
  try {
    const plan = planTrack(p);
    check(plan.pieces.length >= plan.segmentCount, 'plan pieces');
    check(!Number.isNaN(plan.duration) && plan.duration >= 0, 'plan duration');
    for (const f of plan.fetches) check(f.pieces.length > 0, 'a fetch without pieces');
  } catch (err) {
    if (err instanceof FuzzFailure) throw err;
    expectGabeError(err, 'planTrack');
  }
}

const PREFERENCES = [undefined, null, 'best', 'worst', '720p', '1920x1080', '1x1', '99999x99999', 'bogus'];

function checkMaster(p: MasterPlaylist): void {
  for (const v of p.variants) {
    check(typeof v.uri === 'string', 'variant uri');
    check(v.bandwidth === null || Number.isFinite(v.bandwidth), `variant bandwidth ${v.bandwidth}`);
  }
  for (const pref of PREFERENCES) {
    for (const fallback of [null, '360p']) {
      try {
        const { variant } = selectVariant(p, pref, fallback);
        check(p.variants.includes(variant), 'selected variant is one of the playlist');
        const audio = selectAudioRendition(p, variant);
        check(audio === null || (audio.uri !== null && p.renditions.includes(audio)), 'audio rendition');
        selectAudioRendition(p, variant, 'de');
      } catch (err) {
        if (err instanceof FuzzFailure) throw err;
        expectGabeError(err, `selectVariant(${String(pref)}, ${fallback})`);
      }
    }
  }
}

/** Runs one playlist through every step; returns an outcome label ('master', 'media' or an error code). */
function exercise(text: string, base: string | undefined): string {
  let playlist: Playlist;
  try {
    playlist = parsePlaylist(text, base);
  } catch (err) {
    return expectGabeError(err, 'parsePlaylist');
  }
  detectDrm(playlist);
  if (playlist.kind === 'master') checkMaster(playlist);
  else checkMedia(playlist);
  JSON.stringify(toInfoJson(playlist, base !== undefined));
  formatInfoTable(playlist);
  return playlist.kind;
}

// ---------------------------------------------------------------------------------------------
// Worker side

interface WorkerInput {
  sources: Source[];
  seed: number;
  first: number;
  step: number;
  cases: number;
  /** [case index, start time (performance.timeOrigin + now)] of the case in progress. */
  progress: SharedArrayBuffer;
}

interface Failure {
  index: number;
  ms: number;
  message: string;
}

interface WorkerResult {
  done: number;
  failures: Failure[];
  slowest: { index: number; ms: number };
  outcomes: Record<string, number>;
}

function runCases(input: WorkerInput): WorkerResult {
  const progress = new Float64Array(input.progress);
  const result: WorkerResult = { done: 0, failures: [], slowest: { index: -1, ms: 0 }, outcomes: {} };
  for (let i = input.first; i < input.cases && result.failures.length < MAX_REPORTED; i += input.step) {
    const c = makeCase(input.sources, input.seed, i);
    progress[0] = i;
    progress[1] = Date.now();
    const started = performance.now();
    try {
      const outcome = exercise(c.text, c.base);
      result.outcomes[outcome] = (result.outcomes[outcome] ?? 0) + 1;
    } catch (err) {
      result.failures.push({ index: i, ms: 0, message: (err as Error).message });
    }
    const ms = performance.now() - started;
    if (ms > result.slowest.ms) result.slowest = { index: i, ms };
    if (ms > SLOW_MS) result.failures.push({ index: i, ms, message: `took ${ms.toFixed(0)} ms` });
    result.done++;
  }
  return result;
}

if (!isMainThread && (workerData as { fuzz?: WorkerInput } | null)?.fuzz) {
  parentPort?.postMessage(runCases((workerData as { fuzz: WorkerInput }).fuzz));
}

// ---------------------------------------------------------------------------------------------
// Main side

function describeCase(c: FuzzCase): string {
  const shown = c.text.length > 800 ? `${c.text.slice(0, 800)}… (${c.text.length} chars)` : c.text;
  return (
    `case ${c.index} (seed ${SEED}): ${c.source} + [${c.ops.join(', ')}], base ${c.base}\n` +
    `replay: GABE_FUZZ_SEED=${SEED} GABE_FUZZ_ONLY=${c.index} node --import tsx --test test/unit/fuzz.test.ts\n` +
    `--- text ---\n${JSON.stringify(shown)}`
  );
}

/** Runs one worker on this file; a case running longer than HANG_MS is reported as a hang. */
function runWorker(input: WorkerInput): Promise<WorkerResult> {
  const worker = startFuzzWorker(import.meta.url, 'fuzz', input);
  return watchFuzzWorker(worker, input.progress, HANG_MS, (index, running) => ({
    done: 0,
    failures: [{ index, ms: running, message: `hang: still running after ${running} ms` }],
    slowest: { index, ms: running },
    outcomes: {},
  }));
}

/** Runs `f`, which must throw a GabeError of `code` matching `message`, within `ms`. */
function throwsQuickly(f: () => unknown, code: string, message: RegExp, ms: number): void {
  const started = performance.now();
  assert.throws(f, (err: unknown) => {
    assert.ok(err instanceof GabeError, `not a GabeError: ${(err as Error)?.stack}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    assert.ok(!(err.cause instanceof RangeError), 'no RangeError behind it');
    return true;
  });
  const took = performance.now() - started;
  assert.ok(took < ms, `took ${took.toFixed(0)} ms`);
}

/** Joins playlist lines; takes arrays, since spreading 200,000 arguments overflows the stack. */
const lines = (...parts: (string | string[])[]) => `${parts.flat().join('\n')}\n`;
const uris = (n: number, line: (i: number) => string) => Array.from({ length: n }, (_, i) => line(i));

function adversarialTests(): void {
  it('EXT-X-DEFINE variables that expand exponentially fail fast with PLAYLIST_TOO_LARGE', () => {
    const defines = [`#EXT-X-DEFINE:NAME="v0",VALUE="${'x'.repeat(64)}"`];
    for (let i = 1; i <= 12; i++)
      defines.push(`#EXT-X-DEFINE:NAME="v${i}",VALUE="${`{$v${i - 1}}`.repeat(16)}"`);
    const text = lines('#EXTM3U', ...defines, '#EXTINF:2,', 'seg{$v12}.ts', '#EXT-X-ENDLIST');
    throwsQuickly(() => parsePlaylist(text, BASE), 'GABE_ERR_PLAYLIST_TOO_LARGE', /EXT-X-DEFINE/, 1_000);
  });

  it('a variable redefined from itself on every line (doubling each time) is bounded too', () => {
    const text = lines(
      '#EXTM3U',
      uris(200, () => '#EXT-X-DEFINE:NAME="x",VALUE="{$x}{$x}{$x}x"'),
    );
    throwsQuickly(() => parsePlaylist(text, BASE), 'GABE_ERR_PLAYLIST_TOO_LARGE', /EXT-X-DEFINE/, 1_000);
  });

  it('variables still expand within the limit, and the limit follows maxBytes', () => {
    const text = lines(
      '#EXTM3U',
      '#EXT-X-DEFINE:NAME="a",VALUE="abc"',
      '#EXTINF:2,',
      '{$a}{$a}.ts',
      '#EXT-X-ENDLIST',
    );
    const p = parsePlaylist(text, BASE) as MediaPlaylist;
    assert.equal(p.segments[0]?.uri, 'abcabc.ts');
    const big = lines(
      '#EXTM3U',
      `#EXT-X-DEFINE:NAME="a",VALUE="${'a'.repeat(600)}"`,
      '#EXTINF:2,',
      '{$a}{$a}.ts',
    );
    throwsQuickly(
      () => parsePlaylist(big, BASE, { maxBytes: 1_000 }),
      'GABE_ERR_PLAYLIST_TOO_LARGE',
      /1000 characters/,
      100,
    );
  });

  it('EXT-X-DEFINE:IMPORT of an Object.prototype name (constructor, toString) imports nothing', () => {
    const text = lines('#EXTM3U', '#EXT-X-DEFINE:IMPORT="constructor"', '#EXT-X-DEFINE:IMPORT="toString"');
    const p = parsePlaylist(`${text}#EXTINF:2,\n{$constructor}{$toString}.ts\n`, BASE, { imports: {} });
    assert.equal((p as MediaPlaylist).segments[0]?.uri, '{$constructor}{$toString}.ts');
  });

  it('more than 32 KEYFORMATs in effect at once is NOT_A_PLAYLIST, found in linear time', () => {
    const keys = uris(20_000, (i) => `#EXT-X-KEY:METHOD=AES-128,URI="k",KEYFORMAT="f${i}"`);
    const text = lines('#EXTM3U', keys, '#EXTINF:2,', 'a.ts', '#EXT-X-ENDLIST');
    throwsQuickly(() => parsePlaylist(text, BASE), 'GABE_ERR_NOT_A_PLAYLIST', /KEYFORMAT/, 1_000);
  });

  it('key rotation on every one of 20,000 segments parses in linear time', () => {
    const body = uris(20_000, (i) => `#EXT-X-KEY:METHOD=AES-128,URI="k${i}.key"\n#EXTINF:2,\ns${i}.ts`);
    const started = performance.now();
    const p = parsePlaylist(lines('#EXTM3U', body, '#EXT-X-ENDLIST'), BASE) as MediaPlaylist;
    assert.equal(p.segments.length, 20_000);
    assert.equal(p.segments[19_999]?.keys[0]?.uri, 'k19999.key');
    assert.ok(performance.now() - started < 2_000);
  });

  it('byte ranges whose offsets add up past 2^53 are invalid, not silently inexact', () => {
    const text = lines(
      '#EXTM3U',
      '#EXT-X-BYTERANGE:9007199254740000@1000',
      '#EXTINF:2,',
      'a.ts',
      '#EXT-X-BYTERANGE:9007199254740000',
      '#EXTINF:2,',
      'a.ts',
    );
    throwsQuickly(() => parsePlaylist(text, BASE), 'GABE_ERR_NOT_A_PLAYLIST', /invalid byte range/, 100);
    const map = lines(
      '#EXTM3U',
      '#EXT-X-MAP:URI="i.mp4",BYTERANGE="9007199254740991@1"',
      '#EXTINF:2,',
      'a.ts',
    );
    throwsQuickly(() => parsePlaylist(map, BASE), 'GABE_ERR_NOT_A_PLAYLIST', /invalid byte range/, 100);
  });

  it('UTF-16 text, with or without BOM, is named as such', () => {
    const text = lines('#EXTM3U', '#EXTINF:2,', 'a.ts', '#EXT-X-ENDLIST');
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]).toString('utf8');
    const be = Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]).toString(
      'utf8',
    );
    const bare = Buffer.from(text, 'utf16le').toString('utf8');
    for (const t of [le, be, bare])
      throwsQuickly(() => parsePlaylist(t, BASE), 'GABE_ERR_NOT_A_PLAYLIST', /UTF-16/, 100);
  });

  it('#EXTM3U followed by NUL bytes is binary data, but Latin-1 text read as UTF-8 is still a playlist', () => {
    const binary = `#EXTM3U\n${'\u0000\u0001\u00ff'.repeat(50)}\n`;
    throwsQuickly(() => parsePlaylist(binary, BASE), 'GABE_ERR_NOT_A_PLAYLIST', /binary data/, 100);
    const latin1 = Buffer.from(
      lines('#EXTM3U', '#EXTINF:2,Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e', 'a.ts'),
      'latin1',
    );
    assert.equal(parsePlaylist(latin1.toString('utf8'), BASE).kind, 'media');
  });

  it('200,000 segments are refused before a model is built', () => {
    const text = lines(
      '#EXTM3U',
      uris(200_000, (i) => `#EXTINF:2,\nseg_${i}.ts`),
      '#EXT-X-ENDLIST',
    );
    throwsQuickly(() => parsePlaylist(text, BASE), 'GABE_ERR_PLAYLIST_TOO_LARGE', /more than 100000/, 2_000);
  });

  it('"#EXTM3U" alone says it lists no segments rather than that it is live', () => {
    const p = parsePlaylist('#EXTM3U\n', BASE) as MediaPlaylist;
    assert.throws(() => assertDownloadable(p), /lists no segments/);
  });

  it('a table of 130,000 variants (above the default cap) formats without a stack overflow', () => {
    const text = lines(
      '#EXTM3U',
      uris(130_000, (i) => `#EXT-X-STREAM-INF:BANDWIDTH=${i + 1}\nv${i}.m3u8`),
    );
    const p = parsePlaylist(text, BASE, { maxSegments: 200_000 });
    assert.match(formatInfoTable(p), /^Variants: 130000/);
  });
}

if (isMainThread) {
  const sources = [...INLINE, ...corpusSources()];

  describe('adversarial playlists (regressions of what fuzzing found)', adversarialTests);

  describe('playlist fuzzing', () => {
    it(`uses the inline playlists and the shared corpus as sources (${sources.length} sources)`, () => {
      assert.ok(sources.length >= INLINE.length);
      for (const s of sources) assert.notEqual(exercise(s.text, s.base), undefined, s.name);
    });

    if (ONLY !== undefined) {
      it(`replays case ${ONLY} of seed ${SEED}`, () => {
        const c = makeCase(sources, SEED, Number(ONLY));
        process.stdout.write(`${describeCase(c)}\n`);
        const started = performance.now();
        exercise(c.text, c.base);
        assert.ok(performance.now() - started < SLOW_MS);
      });
      return;
    }

    it(`parses and plans ${CASES} mutated playlists (seed ${SEED}) with only GabeErrors, each within ${SLOW_MS} ms`, async (t) => {
      const { seconds, done, slowest, outcomes, byCase } = await runFuzzWorkers(WORKERS, (first) =>
        runWorker({ sources, seed: SEED, first, step: WORKERS, cases: CASES, progress: fuzzProgress() }),
      );
      t.diagnostic(`${done} cases in ${seconds.toFixed(1)} s from ${sources.length} sources, seed ${SEED}`);
      t.diagnostic(`slowest case: ${slowest.index} (${slowest.ms.toFixed(0)} ms)`);
      t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
      const report = failureReport(byCase, MAX_REPORTED, (index) =>
        describeCase(makeCase(sources, SEED, index)),
      );
      assert.equal(byCase.size, 0, `${byCase.size} failing case(s):\n\n${report}`);
      assert.ok(done >= CASES, `only ${done} of ${CASES} cases ran`);
    });
  });
}
