/**
 * Subtitles inside fragmented MP4 (ISO/IEC 14496-30), as DASH and HLS (IMSC1) serve them: the samples
 * of a text track's media segment, with their times from the init segment's timescale and the
 * fragments' tfdt and durations. `stpp` samples are TTML documents; `wvtt` samples are WebVTT cue boxes
 * (vttc with payl, sttg, iden; vtte for none), each shown for its sample's time. Pure.
 */
import { parseTtml } from '../playlist/ttml.js';
import type { Cue } from '../playlist/webvtt-parser.js';
import { readFragment } from './fmp4-fragment.js';
import { parseInit } from './fmp4-init.js';
import { type Box, children, payload } from './mp4-box-reader.js';

/** A text track's init segment, read once for all its media segments. */
export interface TextTrackInit {
  codec: 'stpp' | 'wvtt';
  timescale: number;
  trackId: number;
  trex: Parameters<typeof readFragment>[4];
}

const TEXT_CODECS = new Set(['stpp', 'wvtt']);

/** The text track of an init segment, or null when it has none Gabe reads (stpp, wvtt). */
export function textTrackInit(init: Buffer): TextTrackInit | null {
  const moov = [...children(init)].find((x) => x.type === 'moov');
  if (!moov) return null;
  const { tracks } = parseInit(Buffer.from(init.subarray(moov.start, moov.start + moov.size)));
  for (const t of tracks) {
    const codec = t.entry.toString('latin1', 4, 8);
    if (!TEXT_CODECS.has(codec)) continue;
    const trex = (id: number) => (id === t.id ? t.trex : undefined);
    return { codec: codec as TextTrackInit['codec'], timescale: t.timescale, trackId: t.id, trex };
  }
  return null;
}

interface Sample {
  /** Seconds on the track's media timeline. */
  start: number;
  end: number;
  data: Buffer;
}

/** The text track's samples in a media segment (every moof with the mdat after it). */
function samplesOf(segment: Buffer, track: TextTrackInit): Sample[] {
  const top = [...children(segment)];
  const samples: Sample[] = [];
  let next = 0;
  top.forEach((moof, i) => {
    const mdat = top[i + 1];
    if (moof.type !== 'moof' || mdat?.type !== 'mdat') return;
    const dataFrom = payload(mdat);
    for (const run of readFragment(segment, moof, dataFrom, mdat.start + mdat.size, track.trex)) {
      if (run.trackId !== track.trackId) continue;
      let t = run.baseTime ?? next;
      run.sizes.forEach((size, k) => {
        const at = run.offsets[k]!;
        const d = run.durations[k]!;
        samples.push({
          start: t / track.timescale,
          end: (t + d) / track.timescale,
          data: segment.subarray(at, at + size),
        });
        t += d;
      });
      next = t;
    }
  });
  return samples;
}

/**
 * A TTML sample's cues on the media timeline. ISO/IEC 14496-30 times them on the track's timeline,
 * but some packagers write them from the sample's start: cues that fall outside the sample as written
 * and inside it once moved by its start are taken as relative.
 */
function ttmlCues(sample: Sample): Cue[] {
  const cues = parseTtml(sample.data.toString('utf8')) ?? [];
  const slack = 0.5;
  const inside = (by: number) =>
    cues.every((c) => c.start + by >= sample.start - slack && c.start + by <= sample.end + slack);
  const by = !inside(0) && inside(sample.start) ? sample.start : 0;
  return cues.map((c) => ({ ...c, start: c.start + by, end: c.end + by }));
}

/** A wvtt sample's cues (ISO/IEC 14496-30 7.4): each vttc box is a cue shown for the whole sample. */
function wvttCues(sample: Sample): Cue[] {
  const cues: Cue[] = [];
  for (const cue of children(sample.data)) {
    if (cue.type !== 'vttc') continue;
    const field = (type: string) => {
      const x: Box | undefined = [...children(sample.data, cue)].find((c) => c.type === type);
      return x ? sample.data.toString('utf8', payload(x), x.start + x.size) : null;
    };
    const text = field('payl');
    if (text === null || text.trim() === '') continue;
    cues.push({
      id: field('iden'),
      start: sample.start,
      end: sample.end,
      settings: field('sttg') ?? '',
      text,
    });
  }
  return cues;
}

/** The cues of a text track's media segment, in seconds on the track's media timeline. */
export function fmp4TextCues(segment: Buffer, track: TextTrackInit): Cue[] {
  const samples = samplesOf(segment, track);
  return samples.flatMap((s) => (track.codec === 'stpp' ? ttmlCues(s) : wvttCues(s)));
}
