/**
 * An HLS master with WebVTT subtitle renditions, made with the real ffmpeg at test time (the style of
 * fixtures.ts: cached per process, under the shared fixtures root, read-only for tests).
 *
 * Layout of `dir`:
 *   master.m3u8                 hand-written: one variant (H.264 + AAC muxed), SUBTITLES="subs"
 *   source.vtt                  the subtitle file ffmpeg was given (SOURCE_CUES)
 *   video/index.m3u8, seg_*.ts  ffmpeg's hls muxer, 2 s segments
 *   video/subs_en.m3u8, index*.vtt   English, ffmpeg's hls muxer from source.vtt (`-c:s copy`)
 *   fr/index.m3u8, seg_*.vtt    French, hand-written (see below)
 *
 * What ffmpeg 5.1's hls muxer does with WebVTT, and why French is hand-written:
 * - it never writes X-TIMESTAMP-MAP; cue times are on its output timeline, whose 0 is the earliest
 *   stream start (the AAC priming shifts everything by ~21 ms) before the mpegts muxer's 1.4 s delay;
 * - it puts each cue only in the segment where the cue starts (RFC 8216 3.5 wants it in every segment
 *   it is shown in), and writes one subtitle stream per variant (a second one fails with "Exactly one
 *   WebVTT stream is needed"), so a second language would need a second video variant;
 * - its WebVTT segments are written next to the variant's playlist whatever -hls_subtitle_path says,
 *   so the subtitle playlist must live in the same folder.
 * French is therefore written the way Apple-style packagers do it: every segment starts with
 * `X-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:<that video segment's first PTS, read with ffprobe>`,
 * cue times relative to the segment (`mm:ss.mmm`), every cue repeated in each segment it overlaps
 * (clipped at the segment start, since WebVTT has no negative times), ids restarting per segment, and
 * the same STYLE block in every segment.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from '../../src/jobs/types.js';
import { type Cue, parseWebVtt } from '../../src/playlist/webvtt-parser.js';
import { sharedFixture } from './fixture-cache.js';
import {
  describeMediaPlaylist,
  FFMPEG,
  FFPROBE,
  type HlsMediaFixture,
  makeTempDir,
  parseMediaPlaylist,
  runFfmpeg,
  runFfprobe,
  writeFixtureFile,
} from './fixtures.js';

export interface SourceCue {
  id: string | null;
  /** Seconds on the source timeline: 0 is the first video frame. */
  start: number;
  end: number;
  settings: string;
  text: string;
}

const SECONDS = 8;
const SEGMENT_SECONDS = 2;
const FPS = 25;

/** English cues; cue 2 spans the 2 s boundary, cue 4 spans 4 s and 6 s (three segments). */
export const SOURCE_CUES: readonly SourceCue[] = [
  { id: '1', start: 0.5, end: 1.5, settings: '', text: 'Hello' },
  { id: '2', start: 1.8, end: 2.6, settings: 'line:0 align:start', text: 'Across the boundary' },
  { id: '3', start: 3.0, end: 3.9, settings: '', text: 'First line\nSecond line' },
  { id: null, start: 3.95, end: 6.1, settings: '', text: 'Over <i>three</i> segments' },
  { id: null, start: 7.0, end: 7.8, settings: '', text: 'Last' },
];
const FRENCH = [
  'Bonjour',
  'À travers la limite',
  'Première ligne\nDeuxième ligne',
  'Sur <i>trois</i> segments',
  'Fin',
];
export const FRENCH_CUES: readonly SourceCue[] = SOURCE_CUES.map((c, i) => ({
  ...c,
  id: null,
  text: FRENCH[i]!,
}));
const FRENCH_STYLE = 'STYLE\n::cue {\n  color: yellow;\n}';

export interface SubtitleRenditionFixture {
  language: string;
  name: string;
  default: boolean;
  /** Playlist URI in the master (relative to `dir`). */
  uri: string;
  /** Absolute path of the subtitle media playlist. */
  playlist: string;
  /** Segment URIs as written in the playlist (relative to its folder). */
  segments: string[];
  segmentDurations: number[];
  /** Sum of the EXTINF durations before each segment, seconds (what stitchWebVtt calls `start`). */
  segmentStarts: number[];
  /** 'ffmpeg': the hls muxer's own output, no X-TIMESTAMP-MAP. 'hand-written': see the header. */
  madeBy: 'ffmpeg' | 'hand-written';
  timestampMap: boolean;
  /** The cues this rendition carries, on the source timeline (before any muxer shift). */
  cues: readonly SourceCue[];
}

export interface HlsSubtitlesFixture {
  dir: string;
  master: string;
  masterName: string;
  /** GROUP-ID of the subtitle renditions. */
  groupId: string;
  video: HlsMediaFixture & { uri: string; bandwidth: number };
  /** English (ffmpeg, DEFAULT=YES) then French (hand-written, DEFAULT=NO), in master order. */
  subtitles: [SubtitleRenditionFixture, SubtitleRenditionFixture];
  /** The WebVTT file given to ffmpeg, relative to `dir`. */
  sourceName: string;
  /** 90 kHz PTS of the first video frame and of the first audio frame (from ffprobe on seg_000.ts). */
  videoStartPts: number;
  audioStartPts: number;
  /** Their minimum: what time 0 is in an ffmpeg `-c copy` MP4 remux of the variant. */
  originPts: number;
  /**
   * (videoStartPts - originPts) / 90000: where the first video frame lands in that MP4, so a source cue
   * at t belongs at t + videoOffset there.
   */
  videoOffset: number;
}

/** Cues of subtitle stream `index` of an MP4, as WebVTT (ffmpeg converts mov_text back). */
export async function cuesOf(file: string, index: number): Promise<readonly Cue[]> {
  const out = path.join(await makeTempDir('cues'), 'cues.vtt');
  await runFfmpeg(['-v', 'error', '-i', file, '-map', `0:s:${index}`, '-f', 'webvtt', out]);
  return parseWebVtt(await readFile(out, 'utf8')).cues;
}

/** A sidecar .vtt's cues. */
export async function sidecarCues(file: string): Promise<readonly Cue[]> {
  return parseWebVtt(await readFile(file, 'utf8')).cues;
}

/** A subtitle cue expected in a job's output: SOURCE_CUES[cue]'s text (or its French), at [start, end). */
export interface ExpectedCue {
  cue: number;
  start: number;
  end: number;
}

/**
 * Both renditions of the fixture, in the job's MP4 (mov_text) and in its sidecar .vtt files, hold
 * exactly the cues expected, in order, within 50 ms.
 */
export async function assertSubtitleCues(
  fx: HlsSubtitlesFixture,
  result: NonNullable<Job['result']>,
  expected: readonly ExpectedCue[],
): Promise<void> {
  const sidecars = result.subtitles ?? [];
  assert.deepEqual(
    sidecars.map((s) => s.language),
    fx.subtitles.map((r) => r.language),
  );
  for (const [i, rendition] of fx.subtitles.entries()) {
    const inMp4 = await cuesOf(result.output_path, i);
    const beside = await sidecarCues(sidecars[i]!.path);
    for (const cues of [inMp4, beside]) {
      assert.deepEqual(
        cues.map((c) => c.text),
        expected.map((e) => rendition.cues[e.cue]!.text),
      );
      for (const [j, c] of cues.entries()) {
        const { start, end } = expected[j]!;
        assert.ok(
          Math.abs(c.start - start) < 0.05,
          `${rendition.language} cue ${j}: ${c.start} for ${start}`,
        );
        assert.ok(Math.abs(c.end - end) < 0.05, `${rendition.language} cue ${j}: ${c.end} for ${end}`);
      }
    }
  }
}

/** `mm:ss.mmm` (the short form), from whole milliseconds. */
function shortTime(ms: number): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(Math.floor(ms / 60_000))}:${pad(Math.floor(ms / 1000) % 60)}.${pad(ms % 1000, 3)}`;
}

function vttFile(cues: readonly SourceCue[], header: string[] = []): string {
  const ms = (s: number) => Math.round(s * 1000);
  const long = (s: number) => `00:${shortTime(ms(s))}`;
  const blocks = cues.map((c) =>
    [
      ...(c.id ? [c.id] : []),
      `${long(c.start)} --> ${long(c.end)}${c.settings ? ` ${c.settings}` : ''}`,
      c.text,
    ].join('\n'),
  );
  return `${['WEBVTT', ...header, '', ...blocks.flatMap((b) => [b, ''])].join('\n')}`;
}

/** The 90 kHz start PTS of a stream of an MPEG-TS file. */
export async function firstPts(file: string, stream: 'v:0' | 'a:0'): Promise<number> {
  const out = await runFfprobe([
    '-select_streams',
    stream,
    '-show_entries',
    'stream=start_pts',
    '-of',
    'csv=p=0',
    file,
  ]);
  // The stream is listed under its program too: the first line is enough.
  const pts = Number(out.toString().trim().split('\n')[0]);
  if (!Number.isInteger(pts)) throw new Error(`no start_pts for ${stream} in ${file}: ${out}`);
  return pts;
}

const starts = (durations: number[]) =>
  durations.map((_, i) => durations.slice(0, i).reduce((a, d) => a + d, 0));

async function writeFrench(dir: string, video: HlsMediaFixture, videoStartPts: number) {
  await mkdir(path.join(dir, 'fr'));
  const segmentStarts = starts(video.segmentDurations);
  const segments: string[] = [];
  for (const [k, uri] of video.segments.entries()) {
    const pts = await firstPts(path.join(dir, 'video', uri), 'v:0');
    const from = segmentStarts[k]!;
    const to = from + video.segmentDurations[k]!;
    // Cue time 0 of this segment is the PTS of its first frame; rel is that frame on the source timeline.
    const relMs = Math.round((pts - videoStartPts) / 90);
    const lines = [`X-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:${pts}`, '', FRENCH_STYLE];
    let n = 0;
    for (const c of FRENCH_CUES) {
      if (!(c.start < to && c.end > from)) continue;
      const s = Math.max(0, Math.round(c.start * 1000) - relMs);
      const e = Math.round(c.end * 1000) - relMs;
      lines.push(
        '',
        String(++n),
        `${shortTime(s)} --> ${shortTime(e)}${c.settings ? ` ${c.settings}` : ''}`,
        c.text,
      );
    }
    const name = `seg_${String(k).padStart(3, '0')}.vtt`;
    await writeFixtureFile(dir, `fr/${name}`, `WEBVTT\n${lines.join('\n')}\n`);
    segments.push(name);
  }
  const playlist = [
    '#EXTM3U',
    '#EXT-X-VERSION:3',
    `#EXT-X-TARGETDURATION:${video.targetDuration}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    ...segments.flatMap((s, k) => [`#EXTINF:${video.segmentDurations[k]!.toFixed(6)},`, s]),
    '#EXT-X-ENDLIST',
  ];
  const file = await writeFixtureFile(dir, 'fr/index.m3u8', `${playlist.join('\n')}\n`);
  return { playlist: file, segments, segmentDurations: video.segmentDurations, segmentStarts };
}

let pending: Promise<HlsSubtitlesFixture> | undefined;

/** The fixture described in the header; one encode for every process (fixture-cache.ts). */
export function makeHlsSubtitles(): Promise<HlsSubtitlesFixture> {
  pending ??= sharedFixture(
    [import.meta.url, new URL('./fixtures.ts', import.meta.url).href],
    'hls-subtitles',
    [FFMPEG, FFPROBE],
    build,
  ).catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

async function build(): Promise<HlsSubtitlesFixture> {
  const dir = await makeTempDir('hls-subtitles');
  await mkdir(path.join(dir, 'video'));
  const sourceName = 'source.vtt';
  await writeFixtureFile(dir, sourceName, vttFile(SOURCE_CUES, ['Kind: captions', 'Language: en']));
  const [width, height] = [320, 180];
  await runFfmpeg(
    [
      ...['-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${FPS}:duration=${SECONDS}`],
      ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${SECONDS}`],
      ...['-i', sourceName],
      ...['-map', '0:v', '-map', '1:a', '-map', '2:s'],
      ...[
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-pix_fmt',
        'yuv420p',
        '-r',
        String(FPS),
        '-b:v',
        '300k',
      ],
      ...['-force_key_frames', `expr:gte(t,n_forced*${SEGMENT_SECONDS})`, '-sc_threshold', '0'],
      ...['-g', String(FPS * SEGMENT_SECONDS)],
      ...['-c:a', 'aac', '-b:a', '64k', '-ac', '2', '-ar', '48000'],
      // copy, not `-c:s webvtt`: re-encoding goes through ASS and loses cue ids and settings.
      ...['-c:s', 'copy'],
      ...['-f', 'hls', '-hls_time', String(SEGMENT_SECONDS), '-hls_playlist_type', 'vod'],
      ...['-hls_segment_filename', 'video/seg_%03d.ts', '-hls_subtitle_path', 'video/subs_en.m3u8'],
      'video/index.m3u8',
    ],
    dir,
  );
  const videoMedia = await describeMediaPlaylist(dir, 'video/index.m3u8', {
    hasVideo: true,
    hasAudio: true,
    width,
    height,
  });
  const firstSegment = path.join(dir, 'video', videoMedia.segments[0]!);
  const videoStartPts = await firstPts(firstSegment, 'v:0');
  const audioStartPts = await firstPts(firstSegment, 'a:0');
  const originPts = Math.min(videoStartPts, audioStartPts);

  const enPlaylist = path.join(dir, 'video/subs_en.m3u8');
  const en = parseMediaPlaylist(await readFile(enPlaylist, 'utf8'));
  const enDurations = en.segments.map((s) => s.duration);
  const fr = await writeFrench(dir, videoMedia, videoStartPts);
  const subtitles: [SubtitleRenditionFixture, SubtitleRenditionFixture] = [
    {
      language: 'en',
      name: 'English',
      default: true,
      uri: 'video/subs_en.m3u8',
      playlist: enPlaylist,
      segments: en.segments.map((s) => s.uri),
      segmentDurations: enDurations,
      segmentStarts: starts(enDurations),
      madeBy: 'ffmpeg',
      timestampMap: false,
      cues: SOURCE_CUES,
    },
    {
      language: 'fr',
      name: 'Français',
      default: false,
      uri: 'fr/index.m3u8',
      ...fr,
      madeBy: 'hand-written',
      timestampMap: true,
      cues: FRENCH_CUES,
    },
  ];
  const video = { ...videoMedia, uri: 'video/index.m3u8', bandwidth: videoMedia.peakBandwidth };
  const groupId = 'subs';
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const s of subtitles) {
    lines.push(
      `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="${groupId}",NAME="${s.name}",LANGUAGE="${s.language}",` +
        `DEFAULT=${s.default ? 'YES' : 'NO'},AUTOSELECT=YES,URI="${s.uri}"`,
    );
  }
  lines.push(
    `#EXT-X-STREAM-INF:BANDWIDTH=${video.bandwidth},RESOLUTION=${width}x${height},` +
      `CODECS="${video.codecs}",SUBTITLES="${groupId}"`,
    video.uri,
  );
  const master = await writeFixtureFile(dir, 'master.m3u8', `${lines.join('\n')}\n`);
  return {
    dir,
    master,
    masterName: 'master.m3u8',
    groupId,
    video,
    subtitles,
    sourceName,
    videoStartPts,
    audioStartPts,
    originPts,
    videoOffset: (videoStartPts - originPts) / 90_000,
  };
}
