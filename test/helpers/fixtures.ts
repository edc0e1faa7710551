/**
 * Media fixtures made with the real ffmpeg at test time, so tests exercise the same containers, codecs
 * and playlists the downloader meets in the wild, without checking binary media into the repository.
 *
 * Every `make*` call is cached by its options, per process and in a cache shared by all test processes
 * (fixture-cache.ts): the files of a run, and later runs, share one encode.
 * Treat the returned folders as read-only; `copyFixtureDir()` gives a private copy to corrupt or edit.
 * Everything lives under one temp folder removed at process exit (keep it with GABE_KEEP_FIXTURES=1).
 * Binaries: GABE_TEST_FFMPEG / GABE_TEST_FFPROBE, else `ffmpeg` / `ffprobe` from PATH.
 *
 * Paths in results: `dir` is absolute; `playlistName`, `segments`, `masterName`, `uri` are relative to
 * `dir` exactly as written in the playlists, so `origin.serveDir('/x/', fx.dir)` then
 * `${origin.url}/x/${fx.playlistName}` serves a fixture.
 *
 * All video is H.264 (libx264 ultrafast, yuv420p, 25 fps, keyframes forced on segment boundaries) and
 * all audio AAC-LC stereo 48 kHz, from lavfi testsrc2/smptebars and sine sources.
 */
import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sharedFixture } from './fixture-cache.js';

export const FFMPEG = process.env.GABE_TEST_FFMPEG || 'ffmpeg';
export const FFPROBE = process.env.GABE_TEST_FFPROBE || 'ffprobe';
const FPS = 25;
const AUDIO_CODEC = 'mp4a.40.2'; // AAC-LC, what ffmpeg's native aac encoder writes by default

// ---------------------------------------------------------------------------------------------
// Process helpers

/** Run a binary; reject with its stderr (the only useful clue when ffmpeg fails). */
function run(bin: string, args: string[], cwd?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-8_000);
    });
    child.on('error', (e) => reject(new Error(`cannot run ${bin}: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out));
      const cmd = [bin, ...args].map((a) => (/[\s'"()*;[\]]/.test(a) ? `'${a}'` : a)).join(' ');
      reject(new Error(`${bin} failed (${signal ?? `exit ${code}`})\n$ ${cmd}\n${err.trim()}`));
    });
  });
}

export const runFfmpeg = (args: string[], cwd?: string) =>
  run(FFMPEG, ['-hide_banner', '-nostdin', '-y', '-loglevel', 'error', ...args], cwd);

export const runFfprobe = (args: string[]) => run(FFPROBE, ['-v', 'error', ...args]);

/** The hls demuxer refuses local segments/keys with "uncommon" extensions (.key) unless told otherwise. */
const inputArgs = (input: string) =>
  /^[a-z]+:\/\//i.test(input) || !/\.m3u8?$/i.test(input)
    ? ['-i', input]
    : ['-allowed_extensions', 'ALL', '-i', input];

// ---------------------------------------------------------------------------------------------
// Temp folders and caching

let root: string | undefined;
function fixturesRoot(): string {
  if (!root) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gabe-fixtures-'));
    root = dir;
    if (!process.env.GABE_KEEP_FIXTURES)
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return root;
}

/** A new empty folder under the per-process fixtures root. */
export async function makeTempDir(label = 'tmp'): Promise<string> {
  return mkdtemp(path.join(fixturesRoot(), `${label.replace(/[^\w-]/g, '_')}-`));
}

/** Write a file (creating folders), e.g. a hand-made or broken playlist; returns its absolute path. */
export async function writeFixtureFile(
  dir: string,
  relPath: string,
  content: string | Buffer,
): Promise<string> {
  const file = path.join(dir, relPath);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  return file;
}

/** A private, writable copy of a (shared, cached) fixture folder. */
export async function copyFixtureDir(dir: string): Promise<string> {
  const copy = await makeTempDir(`${path.basename(dir)}-copy`);
  await cp(dir, copy, { recursive: true });
  return copy;
}

const cache = new Map<string, Promise<unknown>>();
/** Per process by options, and across processes and runs through the shared fixture cache. */
function cached<T extends { dir: string }>(kind: string, opts: object, build: () => Promise<T>): Promise<T> {
  const key = `${kind}:${JSON.stringify(opts)}`;
  let p = cache.get(key) as Promise<T> | undefined;
  if (!p) {
    p = sharedFixture(import.meta.url, key, [FFMPEG, FFPROBE], build);
    cache.set(key, p);
    p.catch(() => cache.delete(key)); // let a later call retry after a failure
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// ffprobe and decoding

export interface FfprobeStream {
  index: number;
  codec_type: 'video' | 'audio' | 'subtitle' | 'data' | string;
  codec_name?: string;
  profile?: string;
  width?: number;
  height?: number;
  channels?: number;
  sample_rate?: string;
  duration?: string;
  [k: string]: unknown;
}
export interface FfprobeResult {
  streams: FfprobeStream[];
  format: { format_name: string; duration?: string; size?: string; bit_rate?: string; [k: string]: unknown };
}

export async function ffprobeJson(input: string): Promise<FfprobeResult> {
  const out = await run(FFPROBE, [
    '-v',
    'error',
    ...inputArgs(input),
    '-show_format',
    '-show_streams',
    '-of',
    'json',
  ]);
  return JSON.parse(out.toString()) as FfprobeResult;
}

export async function durationOf(input: string): Promise<number> {
  return Number((await ffprobeJson(input)).format.duration ?? Number.NaN);
}

export async function streamsOf(input: string): Promise<FfprobeStream[]> {
  return (await ffprobeJson(input)).streams;
}

/**
 * MD5 of every decoded frame of the first video (or audio) stream. Equal hashes mean the same pictures
 * in the same order, whatever the container, so a download can be compared with
 * `ffmpeg -i URL -c copy ref.mp4`. `-fps_mode passthrough` stops ffmpeg from duplicating or dropping
 * frames to fit a constant rate, which would hide missing segments. Audio hashes are only comparable
 * between the same container kinds: MP4 edit lists trim the AAC priming samples that TS keeps.
 */
export async function decodedHash(input: string, stream: 'v' | 'a' = 'v'): Promise<string> {
  const args = [...inputArgs(input), '-map', `0:${stream}:0`];
  if (stream === 'v') args.push('-fps_mode', 'passthrough');
  const out = (await runFfmpeg([...args, '-f', 'md5', '-'])).toString();
  const m = /MD5=([0-9a-f]{32})/.exec(out);
  if (!m?.[1]) throw new Error(`no MD5 in ffmpeg output for ${input}: ${out}`);
  return m[1];
}

export const decodedVideoHash = (input: string) => decodedHash(input, 'v');

/** MD5 of each decoded video frame, in order (framemd5's last column; timestamps passed through). */
export async function decodedFrameHashes(input: string): Promise<string[]> {
  const out = await runFfmpeg([
    ...inputArgs(input),
    '-map',
    '0:v:0',
    '-fps_mode',
    'passthrough',
    '-f',
    'framemd5',
    '-',
  ]);
  return out
    .toString()
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(',').at(-1)!.trim());
}

/** Number of decoded video frames. */
export async function decodedFrameCount(input: string): Promise<number> {
  return (await decodedFrameHashes(input)).length;
}

/** RFC 6381 `avc1.PPCCLL` from the first SPS of the stream, for CODECS attributes in masters. */
async function avcCodecString(input: string): Promise<string> {
  const es = await runFfmpeg([
    ...inputArgs(input),
    '-map',
    '0:v:0',
    '-c:v',
    'copy',
    '-frames:v',
    '1',
    '-f',
    'h264',
    '-',
  ]);
  for (let i = 0; i + 6 < es.length; i++) {
    if (es[i] === 0 && es[i + 1] === 0 && es[i + 2] === 1 && ((es[i + 3] ?? 0) & 0x1f) === 7) {
      const hex = (b: number | undefined) => (b ?? 0).toString(16).padStart(2, '0');
      return `avc1.${hex(es[i + 4])}${hex(es[i + 5])}${hex(es[i + 6])}`;
    }
  }
  throw new Error(`no H.264 SPS found in ${input}`);
}

// ---------------------------------------------------------------------------------------------
// Playlists

export interface ParsedSegment {
  uri: string;
  duration: number;
  byteRange?: { offset: number; length: number };
  discontinuity: boolean;
}

/** Just enough of a media playlist parser to describe our own fixtures (the real one lives in src/hls). */
export function parseMediaPlaylist(text: string): {
  targetDuration: number;
  mediaSequence: number;
  segments: ParsedSegment[];
} {
  let targetDuration = 0;
  let mediaSequence = 0;
  const segments: ParsedSegment[] = [];
  let duration = 0;
  let range: ParsedSegment['byteRange'];
  let disc = false;
  let nextOffset = 0;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#EXT-X-TARGETDURATION:')) targetDuration = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) mediaSequence = Number(line.slice(22));
    else if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8));
    else if (line === '#EXT-X-DISCONTINUITY') disc = true;
    else if (line.startsWith('#EXT-X-BYTERANGE:')) {
      const [len, off] = line.slice(17).split('@');
      range = { length: Number(len), offset: off === undefined ? nextOffset : Number(off) };
      nextOffset = range.offset + range.length;
    } else if (!line.startsWith('#')) {
      segments.push({ uri: line, duration, byteRange: range, discontinuity: disc });
      range = undefined;
      disc = false;
    }
  }
  return { targetDuration, mediaSequence, segments };
}

export interface HlsMediaFixture {
  dir: string;
  /** Absolute path of the media playlist. */
  playlist: string;
  /** Playlist path relative to `dir`. */
  playlistName: string;
  /** Segment URIs as written in the playlist (relative to the playlist's folder). */
  segments: string[];
  segmentCount: number;
  segmentDurations: number[];
  /** Sum of EXTINF durations, seconds. */
  duration: number;
  targetDuration: number;
  mediaSequence: number;
  hasVideo: boolean;
  hasAudio: boolean;
  width?: number;
  height?: number;
  /** RFC 6381 codecs of this rendition, e.g. "avc1.42c00d,mp4a.40.2". */
  codecs: string;
  /** Peak segment bit rate, bits/s (what BANDWIDTH means). */
  peakBandwidth: number;
  /** Total bytes * 8 / duration (what AVERAGE-BANDWIDTH means). */
  averageBandwidth: number;
  /** Total bytes of all media files (segments and init segment). */
  totalBytes: number;
}

/** Describe an HLS media playlist already on disk. */
export async function describeMediaPlaylist(
  dir: string,
  playlistName: string,
  facts: { hasVideo: boolean; hasAudio: boolean; width?: number; height?: number; codecs?: string },
): Promise<HlsMediaFixture> {
  const playlist = path.join(dir, playlistName);
  const parsed = parseMediaPlaylist(await readFile(playlist, 'utf8'));
  const base = path.dirname(playlist);
  let peak = 0;
  let total = 0;
  const sizes = new Map<string, number>();
  for (const s of parsed.segments) {
    let size = s.byteRange?.length;
    if (size === undefined) {
      size = sizes.get(s.uri) ?? (await stat(path.join(base, s.uri))).size;
      sizes.set(s.uri, size);
    }
    total += size;
    if (s.duration > 0) peak = Math.max(peak, (size * 8) / s.duration);
  }
  const duration = parsed.segments.reduce((a, s) => a + s.duration, 0);
  let codecs = facts.codecs;
  if (codecs === undefined) {
    const parts = facts.hasVideo ? [await avcCodecString(playlist)] : [];
    if (facts.hasAudio) parts.push(AUDIO_CODEC);
    codecs = parts.join(',');
  }
  return {
    dir,
    playlist,
    playlistName,
    segments: parsed.segments.map((s) => s.uri),
    segmentCount: parsed.segments.length,
    segmentDurations: parsed.segments.map((s) => s.duration),
    duration,
    targetDuration: parsed.targetDuration,
    mediaSequence: parsed.mediaSequence,
    hasVideo: facts.hasVideo,
    hasAudio: facts.hasAudio,
    width: facts.width,
    height: facts.height,
    codecs,
    peakBandwidth: Math.ceil(peak),
    averageBandwidth: Math.ceil(duration > 0 ? (total * 8) / duration : 0),
    totalBytes: total,
  };
}

// ---------------------------------------------------------------------------------------------
// Encoding building blocks

interface Source {
  seconds: number;
  width: number;
  height: number;
  /** lavfi video pattern. */
  pattern?: 'testsrc2' | 'smptebars';
  /** Sine tone, Hz: distinct tones tell renditions apart by ear and by hash. */
  frequency?: number;
}

const videoInput = (s: Source) => [
  '-f',
  'lavfi',
  '-i',
  `${s.pattern ?? 'testsrc2'}=size=${s.width}x${s.height}:rate=${FPS}:duration=${s.seconds}`,
];
const audioInput = (s: Source) => [
  '-f',
  'lavfi',
  '-i',
  `sine=frequency=${s.frequency ?? 440}:sample_rate=48000:duration=${s.seconds}`,
];

/**
 * H.264 settings. Keyframes are forced at every multiple of the segment length and scene-cut keyframes
 * are off, so the hls muxer can cut exactly there and every segment starts with an IDR frame.
 */
function h264Args(kbps: number, segmentSeconds: number): string[] {
  return [
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-r', String(FPS)],
    ...['-b:v', `${kbps}k`, '-maxrate', `${Math.round(kbps * 1.2)}k`, '-bufsize', `${kbps * 2}k`],
    ...['-force_key_frames', `expr:gte(t,n_forced*${segmentSeconds})`, '-sc_threshold', '0'],
    ...['-g', String(Math.max(1, Math.round(FPS * segmentSeconds)))],
  ];
}
const aacArgs = ['-c:a', 'aac', '-b:a', '64k', '-ac', '2', '-ar', '48000'];

const hlsArgs = (segmentSeconds: number, segmentPattern: string) => [
  ...['-f', 'hls', '-hls_time', String(segmentSeconds), '-hls_playlist_type', 'vod'],
  ...['-hls_segment_filename', segmentPattern],
];

// ---------------------------------------------------------------------------------------------
// MP4

export interface Mp4Options {
  seconds?: number;
  width?: number;
  height?: number;
  /** moov before mdat (progressive download friendly). Default true. */
  faststart?: boolean;
  kbps?: number;
}
export interface Mp4Fixture {
  dir: string;
  file: string;
  name: string;
  size: number;
  duration: number;
  width: number;
  height: number;
  fps: number;
  faststart: boolean;
  codecs: string;
}

export function makeMp4(opts: Mp4Options = {}): Promise<Mp4Fixture> {
  const o = { seconds: 4, width: 320, height: 180, faststart: true, kbps: 300, ...opts };
  return cached('mp4', o, async () => {
    const dir = await makeTempDir('mp4');
    const name = o.faststart ? 'video-faststart.mp4' : 'video.mp4';
    const file = path.join(dir, name);
    await runFfmpeg([
      ...videoInput(o),
      ...audioInput(o),
      ...h264Args(o.kbps, 2),
      ...aacArgs,
      '-shortest',
      ...(o.faststart ? ['-movflags', '+faststart'] : []),
      file,
    ]);
    return {
      dir,
      file,
      name,
      size: (await stat(file)).size,
      duration: await durationOf(file),
      width: o.width,
      height: o.height,
      fps: FPS,
      faststart: o.faststart,
      codecs: `${await avcCodecString(file)},${AUDIO_CODEC}`,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// TS HLS

export interface HlsTsOptions {
  seconds?: number;
  segmentSeconds?: number;
  width?: number;
  height?: number;
  audio?: boolean;
  kbps?: number;
  pattern?: 'testsrc2' | 'smptebars';
  frequency?: number;
}

const tsDefaults = (opts: HlsTsOptions) => ({
  seconds: 6,
  segmentSeconds: 2,
  width: 320,
  height: 180,
  audio: true,
  kbps: 300,
  pattern: 'testsrc2' as const,
  frequency: 440,
  ...opts,
});

/** Encode one TS rendition into `dir/sub`; shared by several fixtures. */
async function encodeTs(dir: string, sub: string, o: Required<HlsTsOptions>, extra: string[] = []) {
  await mkdir(path.join(dir, sub), { recursive: true });
  await runFfmpeg(
    [
      ...videoInput(o),
      ...(o.audio ? audioInput(o) : []),
      ...h264Args(o.kbps, o.segmentSeconds),
      ...(o.audio ? aacArgs : []),
      ...extra,
      ...hlsArgs(o.segmentSeconds, path.join(sub, 'seg_%03d.ts')),
      path.join(sub, 'index.m3u8'),
    ],
    dir,
  );
  const facts = { hasVideo: true, hasAudio: o.audio, width: o.width, height: o.height };
  return describeMediaPlaylist(dir, path.join(sub, 'index.m3u8'), facts);
}

/** A VOD media playlist of MPEG-TS segments: `index.m3u8` + `seg_000.ts`... */
export function makeHlsTs(opts: HlsTsOptions = {}): Promise<HlsMediaFixture> {
  const o = tsDefaults(opts);
  return cached('hls-ts', o, async () => encodeTs(await makeTempDir('hls-ts'), '.', o));
}

// ---------------------------------------------------------------------------------------------
// Master playlist with three variants

export interface VariantSpec {
  width: number;
  height: number;
  kbps: number;
}
export interface HlsMasterOptions {
  seconds?: number;
  segmentSeconds?: number;
  variants?: VariantSpec[];
}
export interface HlsVariantFixture extends HlsMediaFixture {
  /** URI in the master (relative to the master's folder). */
  uri: string;
  /** BANDWIDTH / AVERAGE-BANDWIDTH written in the master. */
  bandwidth: number;
  resolution: string;
}
export interface HlsMasterFixture {
  dir: string;
  master: string;
  masterName: string;
  /** In master order: ascending bandwidth. */
  variants: HlsVariantFixture[];
}

const DEFAULT_VARIANTS: VariantSpec[] = [
  { width: 320, height: 180, kbps: 300 },
  { width: 640, height: 360, kbps: 800 },
  { width: 960, height: 540, kbps: 1500 },
];

const streamInf = (attrs: Record<string, string | number>) =>
  `#EXT-X-STREAM-INF:${Object.entries(attrs)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')}`;

/**
 * `master.m3u8` + `v0/`, `v1/`, `v2/` TS renditions of the same picture, encoded in one ffmpeg run
 * (split + scale). The master is hand-written so BANDWIDTH is the measured peak segment bit rate and
 * CODECS comes from each rendition's real SPS.
 */
export function makeHlsMaster(opts: HlsMasterOptions = {}): Promise<HlsMasterFixture> {
  const o = { seconds: 6, segmentSeconds: 2, variants: DEFAULT_VARIANTS, ...opts };
  return cached('hls-master', o, async () => {
    const dir = await makeTempDir('hls-master');
    const big = o.variants.reduce((a, v) => (v.width * v.height > a.width * a.height ? v : a));
    const n = o.variants.length;
    const filter =
      `[0:v]split=${n}${o.variants.map((_, i) => `[s${i}]`).join('')};` +
      o.variants.map((v, i) => `[s${i}]scale=${v.width}:${v.height}[v${i}]`).join(';');
    const outputs: string[] = [];
    for (const [i, v] of o.variants.entries()) {
      await mkdir(path.join(dir, `v${i}`));
      outputs.push(
        ...['-map', `[v${i}]`, '-map', '1:a'],
        ...h264Args(v.kbps, o.segmentSeconds),
        ...aacArgs,
        ...hlsArgs(o.segmentSeconds, `v${i}/seg_%03d.ts`),
        `v${i}/index.m3u8`,
      );
    }
    const src = { seconds: o.seconds, ...big };
    await runFfmpeg([...videoInput(src), ...audioInput(src), '-filter_complex', filter, ...outputs], dir);
    const variants: HlsVariantFixture[] = [];
    for (const [i, v] of o.variants.entries()) {
      const media = await describeMediaPlaylist(dir, `v${i}/index.m3u8`, {
        hasVideo: true,
        hasAudio: true,
        ...v,
      });
      variants.push({
        ...media,
        uri: `v${i}/index.m3u8`,
        bandwidth: media.peakBandwidth,
        resolution: `${v.width}x${v.height}`,
      });
    }
    variants.sort((a, b) => a.bandwidth - b.bandwidth);
    const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-INDEPENDENT-SEGMENTS'];
    for (const v of variants) {
      lines.push(
        streamInf({
          BANDWIDTH: v.bandwidth,
          'AVERAGE-BANDWIDTH': v.averageBandwidth,
          RESOLUTION: v.resolution,
          'FRAME-RATE': FPS.toFixed(3),
          CODECS: `"${v.codecs}"`,
        }),
        v.uri,
      );
    }
    const master = await writeFixtureFile(dir, 'master.m3u8', `${lines.join('\n')}\n`);
    return { dir, master, masterName: 'master.m3u8', variants };
  });
}

// ---------------------------------------------------------------------------------------------
// AES-128

export interface HlsAesOptions extends Omit<HlsTsOptions, 'audio'> {
  /**
   * 'explicit': ffmpeg encrypts (-hls_key_info_file) and writes IV=0x... on EXT-X-KEY.
   * 'implicit': no IV attribute; the IV is the media sequence number (RFC 8216 5.2), encrypted here
   * with node:crypto since ffmpeg 5.1 always writes an IV.
   */
  iv?: 'explicit' | 'implicit';
  /** New key every n segments (encrypted with node:crypto). */
  rotateEvery?: number;
  /** EXT-X-MEDIA-SEQUENCE of the first segment (node:crypto path only; default 5 so index != sequence). */
  mediaSequence?: number;
}
export interface AesKey {
  /** Key file name in `dir`, also the URI in EXT-X-KEY. */
  uri: string;
  key: Buffer;
  /** Explicit IV, if the playlist carries one. */
  iv?: Buffer;
  /** Indices (0-based, in playlist order) of the segments this key encrypts. */
  segments: number[];
}
export interface HlsAesFixture extends HlsMediaFixture {
  /** The first (or only) key. */
  key: Buffer;
  keyUri: string;
  iv?: Buffer;
  keys: AesKey[];
  encryptedBy: 'ffmpeg' | 'node';
  /** The unencrypted rendition the segments were made from (node:crypto path only). */
  plain?: HlsMediaFixture;
}

/** Deterministic keys and IVs: reproducible runs, and readable in a hex dump when debugging. */
const testKey = (i: number) => Buffer.from(Array.from({ length: 16 }, (_, j) => (0x10 * (i + 1) + j) & 0xff));
const testIv = (i: number) => Buffer.from(Array.from({ length: 16 }, (_, j) => (0xa0 + i + j) & 0xff));
const ivFromSequence = (seq: number) => {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(seq), 8);
  return iv;
};

/** AES-128 (CBC, PKCS#7) encrypted TS HLS; key files are `.key` files in the same folder. */
export function makeHlsAes(opts: HlsAesOptions = {}): Promise<HlsAesFixture> {
  const o = { ...tsDefaults(opts), iv: 'explicit' as const, ...opts, audio: true };
  return cached('hls-aes', o, async () => {
    if (o.iv === 'explicit' && o.rotateEvery === undefined && o.mediaSequence === undefined) {
      const dir = await makeTempDir('hls-aes');
      const key = testKey(0);
      const iv = testIv(0);
      await writeFile(path.join(dir, 'key0.key'), key);
      // key info file: URI written in the playlist, path to read the key from, IV in hex.
      await writeFile(
        path.join(dir, 'keyinfo.txt'),
        `key0.key\n${path.join(dir, 'key0.key')}\n${iv.toString('hex')}\n`,
      );
      const media = await encodeTs(dir, '.', o, ['-hls_key_info_file', path.join(dir, 'keyinfo.txt')]);
      const keys = [{ uri: 'key0.key', key, iv, segments: media.segments.map((_, i) => i) }];
      return { ...media, key, keyUri: 'key0.key', iv, keys, encryptedBy: 'ffmpeg' };
    }
    // Same options object as a plain makeHlsTs() call would build, so the encode is shared via the cache.
    const { seconds, segmentSeconds, width, height, kbps, pattern, frequency } = o;
    const plain = await makeHlsTs({
      seconds,
      segmentSeconds,
      width,
      height,
      audio: true,
      kbps,
      pattern,
      frequency,
    });
    const dir = await makeTempDir('hls-aes');
    const seq0 = o.mediaSequence ?? 5;
    const every = o.rotateEvery ?? Number.POSITIVE_INFINITY;
    const keys: AesKey[] = [];
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:3',
      `#EXT-X-TARGETDURATION:${plain.targetDuration}`,
      `#EXT-X-MEDIA-SEQUENCE:${seq0}`,
      '#EXT-X-PLAYLIST-TYPE:VOD',
    ];
    for (const [i, uri] of plain.segments.entries()) {
      const k = Math.floor(i / every);
      if (keys[k] === undefined) {
        const entry: AesKey = { uri: `key${k}.key`, key: testKey(k), segments: [] };
        if (o.iv === 'explicit') entry.iv = testIv(k);
        keys[k] = entry;
        await writeFile(path.join(dir, entry.uri), entry.key);
        const ivAttr = entry.iv ? `,IV=0x${entry.iv.toString('hex')}` : '';
        lines.push(`#EXT-X-KEY:METHOD=AES-128,URI="${entry.uri}"${ivAttr}`);
      }
      const entry = keys[k]!;
      entry.segments.push(i);
      const cipher = createCipheriv('aes-128-cbc', entry.key, entry.iv ?? ivFromSequence(seq0 + i));
      const data = await readFile(path.join(plain.dir, uri));
      await writeFile(path.join(dir, uri), Buffer.concat([cipher.update(data), cipher.final()]));
      lines.push(`#EXTINF:${plain.segmentDurations[i]?.toFixed(6)},`, uri);
    }
    lines.push('#EXT-X-ENDLIST');
    await writeFixtureFile(dir, 'index.m3u8', `${lines.join('\n')}\n`);
    const media = await describeMediaPlaylist(dir, 'index.m3u8', { ...plain, codecs: plain.codecs });
    const first = keys[0]!;
    return { ...media, key: first.key, keyUri: first.uri, iv: first.iv, keys, encryptedBy: 'node', plain };
  });
}

// ---------------------------------------------------------------------------------------------
// fMP4, byte ranges

export interface HlsFmp4Fixture extends HlsMediaFixture {
  /** EXT-X-MAP init segment, relative to `dir`. */
  initName: string;
}

/** fMP4/CMAF segments: `index.m3u8` with EXT-X-MAP `init.mp4` and `seg_000.m4s`... */
export function makeHlsFmp4(opts: HlsTsOptions = {}): Promise<HlsFmp4Fixture> {
  const o = tsDefaults(opts);
  return cached('hls-fmp4', o, async () => {
    const dir = await makeTempDir('hls-fmp4');
    await runFfmpeg(
      [
        ...videoInput(o),
        ...(o.audio ? audioInput(o) : []),
        ...h264Args(o.kbps, o.segmentSeconds),
        ...(o.audio ? aacArgs : []),
        ...hlsArgs(o.segmentSeconds, 'seg_%03d.m4s'),
        ...['-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'init.mp4'],
        'index.m3u8',
      ],
      dir,
    );
    const media = await describeMediaPlaylist(dir, 'index.m3u8', { hasVideo: true, hasAudio: o.audio, ...o });
    const init = (await stat(path.join(dir, 'init.mp4'))).size;
    return { ...media, initName: 'init.mp4', totalBytes: media.totalBytes + init };
  });
}

export interface HlsByteRangeFixture extends HlsMediaFixture {
  /** The one media file all segments point into. */
  mediaFile: string;
  ranges: { offset: number; length: number }[];
}

/** One `index.ts` addressed by EXT-X-BYTERANGE (`-hls_flags single_file`). */
export function makeHlsByteRange(opts: HlsTsOptions = {}): Promise<HlsByteRangeFixture> {
  const o = tsDefaults(opts);
  return cached('hls-byterange', o, async () => {
    const dir = await makeTempDir('hls-byterange');
    await runFfmpeg(
      [
        ...videoInput(o),
        ...(o.audio ? audioInput(o) : []),
        ...h264Args(o.kbps, o.segmentSeconds),
        ...(o.audio ? aacArgs : []),
        ...['-f', 'hls', '-hls_time', String(o.segmentSeconds), '-hls_playlist_type', 'vod'],
        ...['-hls_flags', 'single_file'],
        'index.m3u8',
      ],
      dir,
    );
    const text = await readFile(path.join(dir, 'index.m3u8'), 'utf8');
    const ranges = parseMediaPlaylist(text).segments.map((s) => s.byteRange!);
    const media = await describeMediaPlaylist(dir, 'index.m3u8', { hasVideo: true, hasAudio: o.audio, ...o });
    return { ...media, mediaFile: 'index.ts', ranges };
  });
}

// ---------------------------------------------------------------------------------------------
// Separate audio renditions

export interface AudioRenditionFixture extends HlsMediaFixture {
  uri: string;
  name: string;
  language: string;
  default: boolean;
  /** Sine tone of this rendition, Hz. */
  frequency: number;
}
export interface HlsSeparateAudioFixture {
  dir: string;
  master: string;
  masterName: string;
  /** Video-only rendition, the one variant of the master. */
  video: HlsMediaFixture & { uri: string; bandwidth: number };
  /** Audio group "aud": English (DEFAULT=YES) first, then French (DEFAULT=NO). */
  audio: AudioRenditionFixture[];
}

/**
 * A master whose only variant has video-only segments and `AUDIO="aud"`, with two EXT-X-MEDIA audio
 * renditions (en 440 Hz default, fr 880 Hz). One ffmpeg run, three HLS outputs.
 */
export function makeHlsSeparateAudio(
  opts: Omit<HlsTsOptions, 'audio'> = {},
): Promise<HlsSeparateAudioFixture> {
  const o = { ...tsDefaults(opts), width: 640, height: 360, ...opts, audio: false };
  return cached('hls-separate-audio', o, async () => {
    const dir = await makeTempDir('hls-separate-audio');
    const tracks = [
      { sub: 'audio_en', name: 'English', language: 'en', default: true, frequency: 440 },
      // Non-ASCII NAME on purpose: playlists are UTF-8 and names end up in logs and file names.
      { sub: 'audio_fr', name: 'Français', language: 'fr', default: false, frequency: 880 },
    ];
    for (const sub of ['video', ...tracks.map((t) => t.sub)]) await mkdir(path.join(dir, sub));
    const args = [...videoInput(o)];
    for (const t of tracks) args.push(...audioInput({ ...o, frequency: t.frequency }));
    args.push(
      ...['-map', '0:v', '-an'],
      ...h264Args(o.kbps, o.segmentSeconds),
      ...hlsArgs(o.segmentSeconds, 'video/seg_%03d.ts'),
      'video/index.m3u8',
    );
    for (const [i, t] of tracks.entries()) {
      args.push(
        ...['-map', `${i + 1}:a`, '-vn'],
        ...aacArgs,
        ...hlsArgs(o.segmentSeconds, `${t.sub}/seg_%03d.ts`),
        `${t.sub}/index.m3u8`,
      );
    }
    await runFfmpeg(args, dir);
    const videoMedia = await describeMediaPlaylist(dir, 'video/index.m3u8', {
      hasVideo: true,
      hasAudio: false,
      width: o.width,
      height: o.height,
    });
    const audio: AudioRenditionFixture[] = [];
    for (const t of tracks) {
      const m = await describeMediaPlaylist(dir, `${t.sub}/index.m3u8`, { hasVideo: false, hasAudio: true });
      audio.push({ ...m, uri: `${t.sub}/index.m3u8`, ...t });
    }
    // BANDWIDTH covers the variant plus its largest audio rendition (RFC 8216 4.3.4.2).
    const bandwidth = videoMedia.peakBandwidth + Math.max(...audio.map((a) => a.peakBandwidth));
    const video = { ...videoMedia, uri: 'video/index.m3u8', bandwidth };
    const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-INDEPENDENT-SEGMENTS'];
    for (const a of audio) {
      lines.push(
        `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="${a.name}",LANGUAGE="${a.language}",` +
          `DEFAULT=${a.default ? 'YES' : 'NO'},AUTOSELECT=YES,CHANNELS="2",URI="${a.uri}"`,
      );
    }
    lines.push(
      streamInf({
        BANDWIDTH: bandwidth,
        RESOLUTION: `${o.width}x${o.height}`,
        CODECS: `"${video.codecs},${AUDIO_CODEC}"`,
        AUDIO: '"aud"',
      }),
      video.uri,
    );
    const master = await writeFixtureFile(dir, 'master.m3u8', `${lines.join('\n')}\n`);
    return { dir, master, masterName: 'master.m3u8', video, audio };
  });
}

// ---------------------------------------------------------------------------------------------
// Discontinuity

export interface HlsDiscontinuityOptions {
  /** Seconds of each piece. */
  seconds?: [number, number];
  segmentSeconds?: number;
  width?: number;
  height?: number;
  /** Size of the second piece (default: same as the first). */
  secondSize?: { width: number; height: number };
}
export interface HlsDiscontinuityFixture extends HlsMediaFixture {
  /** Index of the first segment after #EXT-X-DISCONTINUITY. */
  discontinuityAt: number;
  /** The two pieces as separate playlists (`a/index.m3u8`, `b/index.m3u8`). */
  parts: [HlsMediaFixture, HlsMediaFixture];
}

/**
 * `index.m3u8` joining two separately encoded pieces (testsrc2 + 440 Hz, then smptebars + 660 Hz), each
 * starting at the same timestamps, with #EXT-X-DISCONTINUITY between them, like an inserted ad.
 */
export function makeHlsDiscontinuity(opts: HlsDiscontinuityOptions = {}): Promise<HlsDiscontinuityFixture> {
  const o = { seconds: [4, 4] as [number, number], segmentSeconds: 2, width: 320, height: 180, ...opts };
  return cached('hls-discontinuity', o, async () => {
    const dir = await makeTempDir('hls-discontinuity');
    const base = { ...tsDefaults({}), segmentSeconds: o.segmentSeconds, width: o.width, height: o.height };
    const a = await encodeTs(dir, 'a', { ...base, seconds: o.seconds[0] });
    const b = await encodeTs(dir, 'b', {
      ...base,
      ...o.secondSize,
      seconds: o.seconds[1],
      pattern: 'smptebars',
      frequency: 660,
    });
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:3',
      `#EXT-X-TARGETDURATION:${Math.max(a.targetDuration, b.targetDuration)}`,
      '#EXT-X-MEDIA-SEQUENCE:0',
      '#EXT-X-PLAYLIST-TYPE:VOD',
    ];
    for (const [sub, part] of [
      ['a', a],
      ['b', b],
    ] as const) {
      if (sub === 'b') lines.push('#EXT-X-DISCONTINUITY');
      for (const [i, uri] of part.segments.entries()) {
        lines.push(`#EXTINF:${part.segmentDurations[i]?.toFixed(6)},`, `${sub}/${uri}`);
      }
    }
    lines.push('#EXT-X-ENDLIST');
    await writeFixtureFile(dir, 'index.m3u8', `${lines.join('\n')}\n`);
    const media = await describeMediaPlaylist(dir, 'index.m3u8', {
      hasVideo: true,
      hasAudio: true,
      width: o.width,
      height: o.height,
      codecs: a.codecs,
    });
    return { ...media, discontinuityAt: a.segmentCount, parts: [a, b] };
  });
}
