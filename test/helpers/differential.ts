/**
 * Differential checks of a downloaded file against `ffmpeg -c copy` of the same input: the same
 * packets (bytes, hence the same decoded frames and samples), the same A/V offset and the same seek
 * points, whatever constant each tool starts its timeline at.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runFfmpeg, runFfprobe } from './fixtures.js';

export interface StreamFacts {
  kind: string;
  /** Seconds from the file's start at which the stream's first frame is shown. */
  start: number;
  /** MD5 of every packet's bytes, in decode order. */
  packets: string[];
  /**
   * The sync samples (seek points) as the file's `stss` lists them, 1-based; null when the track has
   * no stss (every sample is one). Read from the file: ffprobe's K flags come from its parser.
   */
  keyframes: number[] | null;
}

/** Boxes in b[from, to): [type, payload start, end]. */
function boxes(b: Buffer, from: number, to: number): [string, number, number][] {
  const out: [string, number, number][] = [];
  for (let at = from; at + 8 <= to; ) {
    let size = b.readUInt32BE(at);
    let header = 8;
    if (size === 1) {
      size = Number(b.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) size = to - at;
    if (size < header) break;
    out.push([b.toString('latin1', at + 4, at + 8), at + header, at + size]);
    at += size;
  }
  return out;
}

/** Each track's stss entries (null: no stss), in the moov's order of tracks. */
export function syncSamples(file: string): (number[] | null)[] {
  const b = readFileSync(file);
  const find = (type: string, from: number, to: number) => boxes(b, from, to).find(([t]) => t === type);
  const moov = find('moov', 0, b.length);
  assert.ok(moov, `${file} has a moov`);
  return boxes(b, moov[1], moov[2])
    .filter(([t]) => t === 'trak')
    .map(([, from, to]) => {
      let box: [string, number, number] | undefined = ['trak', from, to];
      for (const type of ['mdia', 'minf', 'stbl']) box = box && find(type, box[1], box[2]);
      const stss = box && find('stss', box[1], box[2]);
      if (!stss) return null;
      const n = b.readUInt32BE(stss[1] + 4);
      return Array.from({ length: n }, (_, i) => b.readUInt32BE(stss[1] + 8 + 4 * i));
    });
}

/**
 * `ffmpeg -c copy` of `input`'s video and audio into the MP4 `output` (`before`: options for the
 * input): the reference a download or a remux must equal.
 */
export async function ffmpegCopy(input: string, output: string, before: string[] = []): Promise<string> {
  await runFfmpeg([
    ...before,
    '-i',
    input,
    '-map',
    '0:v?',
    '-map',
    '0:a?',
    '-c',
    'copy',
    '-f',
    'mp4',
    output,
  ]);
  return output;
}

/** Every packet's timestamps, duration, size and MD5 (`ffmpeg -f framemd5` of a stream copy). */
export async function framemd5(file: string, extra: string[] = []): Promise<string[]> {
  const out = await runFfmpeg([...extra, '-i', file, '-map', '0', '-c', 'copy', '-f', 'framemd5', '-']);
  return out
    .toString()
    .split('\n')
    .filter((l) => /^\d/.test(l));
}

export async function streamFacts(file: string): Promise<StreamFacts[]> {
  const probe = JSON.parse(
    (
      await runFfprobe([...['-show_entries', 'stream=index,codec_type,start_time'], ...['-of', 'json', file]])
    ).toString(),
  ) as {
    streams: { index: number; codec_type: string; start_time: string }[];
  };
  const lines = await framemd5(file);
  const syncs = syncSamples(file);
  return probe.streams.map((s) => {
    const start = Number(s.start_time);
    return {
      kind: s.codec_type,
      start,
      packets: lines.filter((l) => Number(l.split(',')[0]) === s.index).map((l) => l.split(',')[5]!.trim()),
      keyframes: syncs[s.index] ?? null,
    };
  });
}

/**
 * `mine` holds what `ref` holds: per stream the same packets and seek points, and the streams start
 * at the same times relative to each other (within `toleranceMs`).
 */
export async function assertSameMedia(mine: string, ref: string, toleranceMs = 1): Promise<StreamFacts[]> {
  const [a, b] = await Promise.all([streamFacts(mine), streamFacts(ref)]);
  assert.deepEqual(
    a.map((s) => s.kind),
    b.map((s) => s.kind),
    'the same streams',
  );
  for (const [i, s] of a.entries()) {
    const r = b[i]!;
    assert.ok(r.packets.length > 0, `the reference's ${r.kind} has packets`);
    assert.equal(s.packets.length, r.packets.length, `${s.kind}: packet count`);
    assert.deepEqual(s.packets, r.packets, `${s.kind}: packet bytes`);
    assert.deepEqual(s.keyframes, r.keyframes, `${s.kind}: seek points`);
  }
  if (a.length > 1) {
    const offset = (f: StreamFacts[]) => f[1]!.start - f[0]!.start;
    assert.ok(
      Math.abs(offset(a) - offset(b)) * 1000 <= toleranceMs,
      `A/V offset ${offset(a).toFixed(3)} s, ffmpeg's ${offset(b).toFixed(3)} s`,
    );
  }
  return a;
}
