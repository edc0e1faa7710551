/**
 * The benchmark's media, made with ffmpeg once and cached under bench/.cache/.
 *
 * Encoding 600 s of 1080p takes minutes on two cores, so a 16 s piece is encoded once (testsrc2 +
 * a sine tone, x264 ultrafast at a constant ~3.2 Mbit/s with a keyframe every second, AAC 128 kbit/s)
 * and looped with `-stream_loop -1 -c copy` into the HLS muxer, which rewrites the timestamps: the
 * result is a valid, continuous stream of N one-second MPEG-TS segments (~400 KB each). 16 s holds a
 * whole number of AAC frames (16 × 48000 / 1024 = 750), so the loop points have no audio gaps.
 * The MP4 is the same stream remuxed with `-c copy -movflags +faststart`.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** Bump when the generation recipe changes: cached content with another version is regenerated. */
const RECIPE = 1;
const PIECE_SECONDS = 16;
const VIDEO_KBPS = 2900;

export interface HlsContent {
  /** Path on the origin, e.g. /hls-600/index.m3u8. */
  urlPath: string;
  segments: number;
  /** Sum of the playlist's EXTINF durations. */
  durationS: number;
  bytes: number;
  generatedInS: number;
}

export interface Mp4Content {
  urlPath: string;
  durationS: number;
  bytes: number;
  sha256: string;
  generatedInS: number;
}

interface Meta {
  recipe: number;
  [key: string]: unknown;
}

export function runFfmpeg(args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-y', ...args], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`ffmpeg ${args.join(' ')} failed (${code}): ${err}`)),
    );
  });
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file, { highWaterMark: 1024 * 1024 })
      .on('data', (d) => h.update(d))
      .once('error', reject)
      .once('end', () => resolve(h.digest('hex')));
  });
}

function readMeta<T>(file: string): T | null {
  if (!existsSync(file)) return null;
  try {
    const { recipe, ...content } = JSON.parse(readFileSync(file, 'utf8')) as T & Meta;
    return recipe === RECIPE ? (content as T) : null;
  } catch {
    return null;
  }
}

export function playlistDuration(text: string): { duration: number; segments: number } {
  let duration = 0;
  let segments = 0;
  for (const m of text.matchAll(/^#EXTINF:([\d.]+)/gm)) {
    duration += Number(m[1]);
    segments++;
  }
  return { duration, segments };
}

async function ensurePiece(cacheDir: string, log: (s: string) => void): Promise<string> {
  const piece = path.join(cacheDir, `piece-${PIECE_SECONDS}s-r${RECIPE}.ts`);
  if (existsSync(piece)) return piece;
  log(`encoding a ${PIECE_SECONDS} s 1080p piece (x264 ultrafast)…`);
  const tmp = `${piece}.tmp.ts`;
  const k = `${VIDEO_KBPS}k`;
  await runFfmpeg([
    ...['-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=30'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
    ...['-t', String(PIECE_SECONDS), '-map', '0:v', '-map', '1:a'],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'],
    ...[
      '-b:v',
      k,
      '-minrate',
      k,
      '-maxrate',
      k,
      '-bufsize',
      `${VIDEO_KBPS / 2}k`,
      '-x264-params',
      'nal-hrd=cbr',
    ],
    ...['-g', '30', '-keyint_min', '30', '-sc_threshold', '0'],
    ...['-c:a', 'aac', '-b:a', '128k', '-f', 'mpegts', tmp],
  ]);
  renameSync(tmp, piece);
  return piece;
}

/** An HLS VOD stream of `segments` one-second segments under cacheDir/hls-<segments>/. */
export async function ensureHls(
  cacheDir: string,
  segments: number,
  log: (s: string) => void,
): Promise<HlsContent> {
  await mkdir(cacheDir, { recursive: true });
  const name = `hls-${segments}`;
  const metaFile = path.join(cacheDir, `${name}.json`);
  const cached = readMeta<HlsContent>(metaFile);
  if (cached && existsSync(path.join(cacheDir, name, 'index.m3u8'))) return { ...cached, generatedInS: 0 };
  const started = performance.now();
  const piece = await ensurePiece(cacheDir, log);
  log(`muxing ${segments} × 1 s HLS segments into bench/.cache/${name}/…`);
  const dir = path.join(cacheDir, name);
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await runFfmpeg(
    [
      ...['-stream_loop', '-1', '-i', piece, '-t', String(segments), '-map', '0', '-c', 'copy'],
      ...['-f', 'hls', '-hls_time', '1', '-hls_playlist_type', 'vod', '-hls_list_size', '0'],
      ...['-hls_segment_filename', 'seg_%05d.ts', 'index.m3u8'],
    ],
    tmp,
  );
  renameSync(tmp, dir);
  const playlist = readFileSync(path.join(dir, 'index.m3u8'), 'utf8');
  const { duration, segments: count } = playlistDuration(playlist);
  let bytes = 0;
  for (const f of await readdir(dir)) bytes += (await stat(path.join(dir, f))).size;
  const content: HlsContent = {
    urlPath: `/${name}/index.m3u8`,
    segments: count,
    durationS: Math.round(duration * 1000) / 1000,
    bytes,
    generatedInS: Math.round((performance.now() - started) / 100) / 10,
  };
  writeFileSync(metaFile, JSON.stringify({ recipe: RECIPE, ...content }, null, 2));
  return content;
}

/** The same stream as a faststart MP4: cacheDir/mp4-<segments>.mp4. */
export async function ensureMp4(
  cacheDir: string,
  hls: HlsContent,
  log: (s: string) => void,
): Promise<Mp4Content> {
  const name = `mp4-${hls.segments}.mp4`;
  const metaFile = path.join(cacheDir, `mp4-${hls.segments}.json`);
  const file = path.join(cacheDir, name);
  const cached = readMeta<Mp4Content>(metaFile);
  if (cached && existsSync(file) && statSync(file).size === cached.bytes)
    return { ...cached, generatedInS: 0 };
  const started = performance.now();
  log(`remuxing the stream into a faststart MP4 (bench/.cache/${name})…`);
  const tmp = `${file}.tmp.mp4`;
  await runFfmpeg([
    ...['-i', path.join(cacheDir, hls.urlPath.slice(1)), '-map', '0', '-c', 'copy'],
    ...['-movflags', '+faststart', tmp],
  ]);
  renameSync(tmp, file);
  const content: Mp4Content = {
    urlPath: `/${name}`,
    durationS: hls.durationS,
    bytes: statSync(file).size,
    sha256: await sha256File(file),
    generatedInS: Math.round((performance.now() - started) / 100) / 10,
  };
  writeFileSync(metaFile, JSON.stringify({ recipe: RECIPE, ...content }, null, 2));
  return content;
}

export interface DashContent {
  /** Path on the origin, e.g. /dash-600/index.mpd. */
  urlPath: string;
  /** Video segments (the audio adaptation set has as many). */
  segments: number;
  /** Segment requests a full download makes: every media segment of both sets plus the two inits. */
  requests: number;
  durationS: number;
  bytes: number;
  generatedInS: number;
}

/**
 * The same stream as MPEG-DASH, as packagers ship it: separate video and audio adaptation sets of
 * fMP4 one-second segments addressed by a SegmentTemplate with a SegmentTimeline, cut from the MP4
 * by ffmpeg's dash muxer (`-c copy`; the keyframe every second makes every video segment 1 s).
 */
export async function ensureDash(
  cacheDir: string,
  mp4: Mp4Content,
  segments: number,
  log: (s: string) => void,
): Promise<DashContent> {
  const name = `dash-${segments}`;
  const metaFile = path.join(cacheDir, `${name}.json`);
  const cached = readMeta<DashContent>(metaFile);
  if (cached && existsSync(path.join(cacheDir, name, 'index.mpd'))) return { ...cached, generatedInS: 0 };
  const started = performance.now();
  log(`packaging ${segments} × 1 s DASH segments into bench/.cache/${name}/…`);
  const dir = path.join(cacheDir, name);
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await runFfmpeg(
    [
      ...['-i', path.join(cacheDir, mp4.urlPath.slice(1)), '-t', String(segments), '-map', '0', '-c', 'copy'],
      ...['-f', 'dash', '-seg_duration', '1', '-use_template', '1', '-use_timeline', '1'],
      ...['-adaptation_sets', 'id=0,streams=v id=1,streams=a'],
      ...['-init_seg_name', 'init-$RepresentationID$.m4s'],
      ...['-media_seg_name', 'chunk-$RepresentationID$-$Number%05d$.m4s', 'index.mpd'],
    ],
    tmp,
  );
  renameSync(tmp, dir);
  const files = await readdir(dir);
  let bytes = 0;
  for (const f of files) bytes += (await stat(path.join(dir, f))).size;
  const mpd = readFileSync(path.join(dir, 'index.mpd'), 'utf8');
  const duration = /mediaPresentationDuration="PT(?:(\d+)H)?(?:(\d+)M)?([\d.]+)S"/.exec(mpd);
  const content: DashContent = {
    urlPath: `/${name}/index.mpd`,
    segments: files.filter((f) => f.startsWith('chunk-0-')).length,
    requests: files.filter((f) => f.endsWith('.m4s')).length,
    durationS: duration
      ? Number(duration[1] ?? 0) * 3600 + Number(duration[2] ?? 0) * 60 + Number(duration[3])
      : segments,
    bytes,
    generatedInS: Math.round((performance.now() - started) / 100) / 10,
  };
  writeFileSync(metaFile, JSON.stringify({ recipe: RECIPE, ...content }, null, 2));
  return content;
}

/**
 * SHA-256 of a file's mdat payload(s): the media bytes, whatever the moov says about them. Gabe's MP4
 * download writes the job's title and source into the moov, so its file is compared with the
 * source on this, plus the duration.
 */
export async function mdatSha256(file: string): Promise<string | null> {
  const { open } = await import('node:fs/promises');
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const h = createHash('sha256');
    let found = false;
    const head = Buffer.alloc(16);
    for (let at = 0; at + 8 <= size; ) {
      await fh.read(head, 0, 16, at);
      let len = head.readUInt32BE(0);
      let hdr = 8;
      if (len === 1) {
        len = Number(head.readBigUInt64BE(8));
        hdr = 16;
      } else if (len === 0) len = size - at;
      if (len < hdr) return null;
      if (head.toString('latin1', 4, 8) === 'mdat') {
        found = true;
        await new Promise<void>((resolve, reject) => {
          createReadStream(file, { start: at + hdr, end: at + len - 1, highWaterMark: 1024 * 1024 })
            .on('data', (d) => h.update(d))
            .once('error', reject)
            .once('end', () => resolve());
        });
      }
      at += len;
    }
    return found ? h.digest('hex') : null;
  } finally {
    await fh.close();
  }
}
