/**
 * MPEG-DASH fixtures made with ffmpeg's dash muxer (and the mp4 muxer, for SegmentBase) at test time,
 * cached like fixtures.ts's. Every fixture is a folder with `out.mpd` and its media, to serve with
 * `origin.serveDir('/d/', fx.dir)`. Video H.264 25 fps with a keyframe every second, audio AAC stereo
 * 48 kHz (one sine per language, so a language's samples tell which one was downloaded).
 *
 * Addressing modes (what ffmpeg 5.1 writes):
 * - `timeline`: SegmentTemplate + SegmentTimeline, $Number$ (`-use_template 1 -use_timeline 1`);
 * - `time`: the same with $Time$ in the media name (`-media_seg_name ...$Time$...`);
 * - `number`: SegmentTemplate with @duration, $Number$ (`-use_timeline 0`);
 * - `list`: SegmentList of SegmentURLs (`-use_template 0 -use_timeline 0`);
 * - `base`: SegmentBase with one global sidx per file (written by hand around mp4 files made with
 *   `-movflags frag_keyframe+global_sidx+dash`: ffmpeg's dash muxer itself never writes SegmentBase).
 */
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sharedFixture } from './fixture-cache.js';
import { FFMPEG, FFPROBE, makeTempDir, runFfmpeg } from './fixtures.js';

export type DashMode = 'timeline' | 'time' | 'number' | 'list' | 'base';

export interface DashOptions {
  mode?: DashMode;
  seconds?: number;
  /** Video heights, one representation each (width 4:3), highest first. */
  heights?: number[];
  /** One audio adaptation set per language, with its own sine frequency (440 Hz × (i + 1)). */
  languages?: string[];
  pattern?: 'testsrc2' | 'smptebars';
}

export interface DashFixture {
  dir: string;
  mpdName: string;
  mode: DashMode;
  seconds: number;
  heights: number[];
  languages: string[];
  /**
   * The files each representation's media is in, init first, relative to `dir` (video by height as
   * in `heights`, then audio by language): joined, they are the stream the muxer wrote, the reference
   * where ffmpeg 5.1's dash demuxer falls short (it drops the last SegmentURL of a SegmentList and
   * the last S of a timeline whose last S differs).
   */
  video: string[][];
  audio: string[][];
}

const defaults = (o: DashOptions) => ({
  mode: 'timeline' as DashMode,
  seconds: 4,
  heights: [240],
  languages: ['eng'],
  pattern: 'testsrc2' as const,
  ...o,
});

const cache = new Map<string, Promise<DashFixture>>();

function cached(opts: object, build: () => Promise<DashFixture>): Promise<DashFixture> {
  const key = `dash:${JSON.stringify(opts)}`;
  let p = cache.get(key);
  if (!p) {
    p = sharedFixture([import.meta.url], key, [FFMPEG, FFPROBE], build);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

function inputs(o: ReturnType<typeof defaults>): string[] {
  const args = ['-f', 'lavfi', '-i', `${o.pattern}=s=320x240:r=25`];
  o.languages.forEach((_l, i) => {
    args.push('-f', 'lavfi', '-i', `sine=f=${440 * (i + 1)}:r=48000`);
  });
  return [...args, '-t', String(o.seconds)];
}

const videoArgs = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
const gopArgs = ['-g', '25', '-keyint_min', '25', '-sc_threshold', '0'];

/** One representation per height, then one audio stream per language (with its language tag). */
function streamArgs(o: ReturnType<typeof defaults>): string[] {
  const args: string[] = [];
  for (const _h of o.heights) args.push('-map', '0:v');
  o.languages.forEach((_l, i) => {
    args.push('-map', `${i + 1}:a`);
  });
  args.push(...videoArgs, ...gopArgs);
  o.heights.forEach((h, i) => {
    args.push(`-s:v:${i}`, `${(h * 4) / 3}x${h}`, `-b:v:${i}`, `${h}k`);
  });
  args.push('-c:a', 'aac', '-ac', '2', '-b:a', '64k');
  o.languages.forEach((l, i) => {
    args.push(`-metadata:s:a:${i}`, `language=${l}`);
  });
  return args;
}

function adaptationSets(o: ReturnType<typeof defaults>): string {
  const sets = ['id=0,streams=v'];
  o.languages.forEach((_l, i) => {
    sets.push(`id=${i + 1},streams=${o.heights.length + i}`);
  });
  return sets.join(' ');
}

const modeArgs: Record<Exclude<DashMode, 'base'>, string[]> = {
  timeline: ['-use_template', '1', '-use_timeline', '1'],
  time: [
    '-use_template',
    '1',
    '-use_timeline',
    '1',
    '-media_seg_name',
    'chunk-$RepresentationID$-$Time$.m4s',
  ],
  number: ['-use_template', '1', '-use_timeline', '0'],
  list: ['-use_template', '0', '-use_timeline', '0'],
};

/** A static MPD in the given addressing mode. */
export function makeDash(opts: DashOptions = {}): Promise<DashFixture> {
  const o = defaults(opts);
  return cached(o, async () => {
    const dir = await makeTempDir(`dash-${o.mode}`);
    if (o.mode === 'base') await segmentBase(dir, o);
    else {
      await runFfmpeg(
        [
          ...inputs(o),
          ...streamArgs(o),
          ...['-f', 'dash', '-seg_duration', '1', ...modeArgs[o.mode]],
          ...['-adaptation_sets', adaptationSets(o)],
          'out.mpd',
        ],
        dir,
      );
      if (o.mode === 'time') await fixTimeNames(dir);
    }
    const files = await mediaFiles(dir, o);
    return { dir, mpdName: 'out.mpd', ...o, ...files };
  });
}

/** A representation's files, in order: `init-stream<i>.m4s`, then its chunks by number or time. */
async function mediaFiles(
  dir: string,
  o: ReturnType<typeof defaults>,
): Promise<{ video: string[][]; audio: string[][] }> {
  if (o.mode === 'base') {
    return {
      video: o.heights.map((h) => [`video-${h}.mp4`]),
      audio: o.languages.map((l) => [`audio-${l}.mp4`]),
    };
  }
  const names = await readdir(dir);
  const of = (i: number) => {
    const chunk = new RegExp(`^chunk-(?:stream)?${i}-(-?\\d+)\\.m4s$`);
    const chunks = names
      .map((n) => [n, chunk.exec(n)?.[1]] as const)
      .filter(([, k]) => k !== undefined)
      .sort((a, b) => Number(a[1]) - Number(b[1]))
      .map(([n]) => n);
    // With @duration the MPD addresses whole 1 s segments only; the muxer may write one more, shorter.
    if (o.mode === 'number') chunks.length = Math.min(chunks.length, Math.ceil(o.seconds));
    return [`init-stream${i}.m4s`, ...chunks];
  };
  return {
    video: o.heights.map((_h, i) => of(i)),
    audio: o.languages.map((_l, i) => of(o.heights.length + i)),
  };
}

/**
 * ffmpeg 5.1 names an AAC stream's first $Time$ chunk after its priming (`chunk-2--1024.m4s`) but
 * writes t="0" for it in the MPD: the file is renamed to what the MPD says.
 */
async function fixTimeNames(dir: string): Promise<void> {
  for (const n of await readdir(dir)) {
    const m = /^(chunk-\d+-)-\d+\.m4s$/.exec(n);
    if (m) await rename(path.join(dir, n), path.join(dir, `${m[1]}0.m4s`));
  }
}

/** Top-level boxes of an MP4 file: [type, offset, size]. */
export async function boxes(file: string): Promise<[string, number, number][]> {
  const data = await readFile(file);
  const out: [string, number, number][] = [];
  for (let at = 0; at + 8 <= data.length; ) {
    const size = data.readUInt32BE(at);
    out.push([data.toString('latin1', at + 4, at + 8), at, size]);
    if (size < 8) break;
    at += size;
  }
  return out;
}

/** Init = everything before the sidx; index = the sidx itself. */
async function baseRanges(file: string): Promise<{ init: string; index: string }> {
  const sidx = (await boxes(file)).find(([t]) => t === 'sidx');
  if (!sidx) throw new Error(`no sidx in ${file}`);
  const [, at, size] = sidx;
  return { init: `0-${at - 1}`, index: `${at}-${at + size - 1}` };
}

async function segmentBase(dir: string, o: ReturnType<typeof defaults>): Promise<void> {
  const frag = ['-movflags', '+frag_keyframe+global_sidx+dash', '-f', 'mp4'];
  const reps: string[] = [];
  for (const [i, h] of o.heights.entries()) {
    const name = `video-${h}.mp4`;
    await runFfmpeg(
      [
        ...['-f', 'lavfi', '-i', `${o.pattern}=s=320x240:r=25`, '-t', String(o.seconds)],
        ...[...videoArgs, ...gopArgs, '-s', `${(h * 4) / 3}x${h}`, '-b:v', `${h}k`, ...frag, name],
      ],
      dir,
    );
    const r = await baseRanges(path.join(dir, name));
    reps.push(
      `<Representation id="v${i}" mimeType="video/mp4" codecs="avc1.42c00d" bandwidth="${h * 1000}" width="${(h * 4) / 3}" height="${h}"><BaseURL>${name}</BaseURL><SegmentBase indexRange="${r.index}"><Initialization range="${r.init}"/></SegmentBase></Representation>`,
    );
  }
  const sets = [
    `<AdaptationSet id="0" contentType="video" mimeType="video/mp4">${reps.join('')}</AdaptationSet>`,
  ];
  for (const [i, lang] of o.languages.entries()) {
    const name = `audio-${lang}.mp4`;
    await runFfmpeg(
      [
        ...['-f', 'lavfi', '-i', `sine=f=${440 * (i + 1)}:r=48000`, '-t', String(o.seconds)],
        ...['-c:a', 'aac', '-ac', '2', '-b:a', '64k', '-frag_duration', '1000000', ...frag, name],
      ],
      dir,
    );
    const r = await baseRanges(path.join(dir, name));
    sets.push(
      `<AdaptationSet id="${i + 1}" contentType="audio" mimeType="audio/mp4" lang="${lang}"><Representation id="a${i}" codecs="mp4a.40.2" bandwidth="64000" audioSamplingRate="48000"><BaseURL>${name}</BaseURL><SegmentBase indexRange="${r.index}"><Initialization range="${r.init}"/></SegmentBase></Representation></AdaptationSet>`,
    );
  }
  await writeFile(path.join(dir, 'out.mpd'), staticMpd(o.seconds, [period('0', null, sets)]));
}

export function period(id: string, baseUrl: string | null, sets: string[], start?: number): string {
  const base = baseUrl ? `<BaseURL>${baseUrl}</BaseURL>` : '';
  const at = start !== undefined ? ` start="PT${start}S"` : '';
  return `<Period id="${id}"${at}>${base}${sets.join('')}</Period>`;
}

export function staticMpd(seconds: number, periods: string[]): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" type="static" mediaPresentationDuration="PT${seconds}S" minBufferTime="PT2S">
${periods.join('\n')}
</MPD>
`;
}

/**
 * Two periods, each a `number`-mode output of its own (testsrc2 then smptebars) in `p0/` and `p1/`:
 * the MPD is the first output's with the second's Period appended (BaseURLs point into each folder).
 */
export function makeDashMultiPeriod(seconds = 3): Promise<DashFixture & { parts: string[] }> {
  return cached({ multi: seconds }, async () => {
    const dir = await makeTempDir('dash-multi');
    const parts = ['p0', 'p1'];
    const periods: string[] = [];
    for (const [i, part] of parts.entries()) {
      const o = defaults({ seconds, pattern: i === 0 ? 'testsrc2' : 'smptebars' });
      await mkdir(path.join(dir, part));
      await runFfmpeg(
        [
          ...inputs(o),
          ...streamArgs(o),
          ...['-f', 'dash', '-seg_duration', '1', ...modeArgs.number],
          ...['-adaptation_sets', adaptationSets(o)],
          `${part}/out.mpd`,
        ],
        dir,
      );
      const text = await readFile(path.join(dir, part, 'out.mpd'), 'utf8');
      const body = /<Period[^>]*>([\s\S]*)<\/Period>/.exec(text)?.[1];
      if (!body) throw new Error(`no Period in ${part}/out.mpd`);
      periods.push(`<Period id="${i}" start="PT${i * seconds}S"><BaseURL>${part}/</BaseURL>${body}</Period>`);
    }
    await writeFile(path.join(dir, 'out.mpd'), staticMpd(seconds * 2, periods));
    const o = defaults({ seconds, mode: 'number' });
    const files = await mediaFiles(path.join(dir, parts[0]!), o);
    return { dir, mpdName: 'out.mpd', ...o, seconds: seconds * 2, ...files, parts };
  }) as Promise<DashFixture & { parts: string[] }>;
}

/**
 * The representations' own files (init + segments joined, as the muxer wrote them), a video and an
 * audio file read by ffmpeg as they are: the reference where ffmpeg 5.1's dash demuxer reads less than the MPD lists (the last
 * SegmentURL of a SegmentList, the last S of some timelines), so `ffmpeg -i MPD` cannot be.
 */
export async function dashSourceReference(
  fx: DashFixture,
  video = 0,
  audio = 0,
): Promise<{ video: string; audio: string }> {
  const dir = await makeTempDir('dash-src');
  const join = async (files: string[], name: string) => {
    const parts = await Promise.all(files.map((f) => readFile(path.join(fx.dir, f))));
    await writeFile(path.join(dir, name), Buffer.concat(parts));
    return path.join(dir, name);
  };
  return { video: await join(fx.video[video]!, 'v.mp4'), audio: await join(fx.audio[audio]!, 'a.mp4') };
}

/**
 * SegmentBase with a hierarchical index (ISO/IEC 14496-12 8.16.3, reference_type 1): ffmpeg's
 * single-file dash output puts a sidx before every segment; a top sidx is inserted after the init whose
 * references point at those sidx boxes (each covering its sidx, moof and mdat). `video`/`audio` name
 * the single files as ffmpeg wrote them (its mov demuxer does not read the nested index).
 */
export function makeDashNestedSidx(seconds = 4): Promise<DashFixture> {
  return cached({ nested: seconds }, async () => {
    const dir = await makeTempDir('dash-nested');
    const o = defaults({ seconds, mode: 'base' });
    await runFfmpeg(
      [
        ...inputs(o),
        ...streamArgs(o),
        ...[
          '-f',
          'dash',
          '-seg_duration',
          '1',
          '-single_file',
          '1',
          '-single_file_name',
          'single-$RepresentationID$.mp4',
        ],
        ...['-adaptation_sets', adaptationSets(o)],
        'single.mpd',
      ],
      dir,
    );
    const sets: string[] = [];
    for (const [i, kind] of ['video', 'audio'].entries()) {
      const name = `nested-${i}.mp4`;
      const { init, index } = await nest(path.join(dir, `single-${i}.mp4`), path.join(dir, name));
      const attrs =
        kind === 'video'
          ? 'codecs="avc1.42c00d" bandwidth="240000" width="320" height="240"'
          : 'codecs="mp4a.40.2" bandwidth="64000" audioSamplingRate="48000"';
      sets.push(
        `<AdaptationSet id="${i}" contentType="${kind}" mimeType="${kind}/mp4"${kind === 'audio' ? ' lang="eng"' : ''}><Representation id="${kind}" ${attrs}><BaseURL>${name}</BaseURL><SegmentBase indexRange="${index}"><Initialization range="${init}"/></SegmentBase></Representation></AdaptationSet>`,
      );
    }
    await writeFile(path.join(dir, 'out.mpd'), staticMpd(seconds, [period('0', null, sets)]));
    return { dir, mpdName: 'out.mpd', ...o, video: [['single-0.mp4']], audio: [['single-1.mp4']] };
  });
}

/** Writes `to`: `from`'s init, a top sidx of reference_type 1 entries, then `from`'s sidx-led segments. */
async function nest(from: string, to: string): Promise<{ init: string; index: string }> {
  const data = await readFile(from);
  const all = await boxes(from);
  const sidxes = all.filter(([t]) => t === 'sidx');
  const initEnd = sidxes[0]![1];
  const groups = sidxes.map(([, at], k) => [at, sidxes[k + 1]?.[1] ?? data.length] as const);
  const top = Buffer.alloc(32 + 12 * groups.length);
  top.writeUInt32BE(top.length, 0);
  top.write('sidx', 4, 'latin1');
  // version 0, flags 0; reference_ID 1; the inner sidx's timescale; earliest time 0; first_offset 0.
  top.writeUInt32BE(1, 12);
  const inner = (at: number) => ({ version: data[at + 8]!, timescale: data.readUInt32BE(at + 16) });
  top.writeUInt32BE(inner(groups[0]![0]).timescale, 16);
  top.writeUInt16BE(groups.length, 30);
  groups.forEach(([at, end], k) => {
    const refs = at + (inner(at).version === 0 ? 32 : 40);
    top.writeUInt32BE((0x80000000 | (end - at)) >>> 0, 32 + 12 * k);
    top.writeUInt32BE(data.readUInt32BE(refs + 4), 36 + 12 * k);
    top.writeUInt32BE(0x90000000, 40 + 12 * k);
  });
  await writeFile(to, Buffer.concat([data.subarray(0, initEnd), top, data.subarray(initEnd)]));
  return { init: `0-${initEnd - 1}`, index: `${initEnd}-${initEnd + top.length - 1}` };
}
