/**
 * Master playlists with a video-only variant and a separate audio rendition whose media start at
 * chosen times on the shared clock (RFC 8216 6.2.4), in the containers a download meets: MPEG-TS,
 * fMP4, HEVC, and packed audio (raw ADTS with an ID3 PRIV timestamp, RFC 8216 3.4). What
 * `ffmpeg -i master.m3u8 -c copy` keeps of the offset between them is what a download must keep.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sharedFixture } from './fixture-cache.js';
import { FFMPEG, FFPROBE, makeTempDir, runFfmpeg } from './fixtures.js';
import { adtsFrames, readEs } from './ts-writer.js';

export interface RenditionsOptions {
  video: 'h264' | 'hevc';
  videoContainer: 'ts' | 'fmp4';
  audio: 'ts' | 'fmp4' | 'packed';
  /** Where each rendition's media starts on the clock, seconds (ffmpeg's -output_ts_offset). */
  videoStart: number;
  audioStart: number;
  seconds?: number;
}

export interface RenditionsFixture {
  dir: string;
  /** Path of the master playlist in `dir`. */
  master: string;
}

const SEGMENT = 2;

function hls(container: 'ts' | 'fmp4', sub: string): string[] {
  const ext = container === 'ts' ? 'ts' : 'm4s';
  return [
    ...['-f', 'hls', '-hls_time', String(SEGMENT), '-hls_playlist_type', 'vod'],
    ...(container === 'fmp4' ? ['-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'init.mp4'] : []),
    ...['-hls_segment_filename', `${sub}/seg_%03d.${ext}`, `${sub}/index.m3u8`],
  ];
}

/** An ID3v2.4 tag with Apple's PRIV frame: the 33-bit MPEG-TS time of the segment's first sample. */
export function id3Timestamp(ts90k: number): Buffer {
  const owner = Buffer.from('com.apple.streaming.transportStreamTimestamp\0', 'latin1');
  const stamp = Buffer.alloc(8);
  stamp.writeBigUInt64BE(BigInt(ts90k % 2 ** 33));
  const data = Buffer.concat([owner, stamp]);
  const syncsafe = (n: number) =>
    Buffer.from([(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f]);
  const frame = Buffer.concat([Buffer.from('PRIV'), syncsafe(data.length), Buffer.from([0, 0]), data]);
  return Buffer.concat([Buffer.from([0x49, 0x44, 0x33, 4, 0, 0]), syncsafe(frame.length), frame]);
}

/** The TS audio rendition in `dir/audio` rewritten as packed audio (.aac segments) in `dir/audio`. */
async function packAudio(dir: string): Promise<void> {
  const sub = path.join(dir, 'audio');
  const playlist = await readFile(path.join(sub, 'index.m3u8'), 'utf8');
  const segments = (await readdir(sub)).filter((f) => f.endsWith('.ts')).sort();
  for (const seg of segments) {
    const [audio] = readEs(await readFile(path.join(sub, seg)));
    if (!audio) throw new Error(`no audio in ${seg}`);
    const es = Buffer.concat(audio.units.map((u) => u.data));
    adtsFrames(es); // throws unless it is whole ADTS frames
    await writeFile(
      path.join(sub, seg.replace(/\.ts$/, '.aac')),
      Buffer.concat([id3Timestamp(audio.units[0]!.pts!), es]),
    );
  }
  await writeFile(path.join(sub, 'index.m3u8'), playlist.replaceAll('.ts', '.aac'));
}

/** What makes the fixture: this module, the ADTS packing (ts-writer.ts) and runFfmpeg. */
const RECIPE = [
  import.meta.url,
  ...['./ts-writer.ts', './fixtures.ts'].map((f) => new URL(f, import.meta.url).href),
];

/** One encode per options for every process (fixture-cache.ts). */
export function makeRenditions(o: RenditionsOptions): Promise<RenditionsFixture> {
  return sharedFixture(RECIPE, `renditions:${JSON.stringify(o)}`, [FFMPEG, FFPROBE], () =>
    encodeRenditions(o),
  );
}

async function encodeRenditions(o: RenditionsOptions): Promise<RenditionsFixture> {
  const dir = await makeTempDir(`renditions-${o.video}-${o.videoContainer}-${o.audio}`);
  const seconds = o.seconds ?? 6;
  await mkdir(path.join(dir, 'video'));
  await mkdir(path.join(dir, 'audio'));
  const codec =
    o.video === 'h264'
      ? ['-c:v', 'libx264', '-preset', 'ultrafast']
      : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-tag:v', 'hvc1'];
  await runFfmpeg(
    [
      ...['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25', '-t', String(seconds)],
      ...codec,
      ...['-g', '50', '-an', '-output_ts_offset', String(o.videoStart)],
      ...hls(o.videoContainer, 'video'),
    ],
    dir,
  );
  await runFfmpeg(
    [
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(seconds)],
      ...['-c:a', 'aac', '-b:a', '64k', '-vn', '-output_ts_offset', String(o.audioStart)],
      ...hls(o.audio === 'fmp4' ? 'fmp4' : 'ts', 'audio'),
    ],
    dir,
  );
  if (o.audio === 'packed') await packAudio(dir);
  const videoCodec = o.video === 'h264' ? 'avc1.42c00d' : 'hvc1.1.6.L63.90';
  const lines = [
    '#EXTM3U',
    `#EXT-X-VERSION:${o.videoContainer === 'fmp4' || o.audio === 'fmp4' ? 7 : 3}`,
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"',
    `#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=320x180,CODECS="${videoCodec},mp4a.40.2",AUDIO="aud"`,
    'video/index.m3u8',
  ];
  await writeFile(path.join(dir, 'master.m3u8'), `${lines.join('\n')}\n`);
  return { dir, master: 'master.m3u8' };
}
