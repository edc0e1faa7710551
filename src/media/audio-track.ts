/**
 * The AAC track of the in-process remux (src/pipeline/mux/in-process.ts), fed whole PES packets by
 * the TS demuxer: ADTS frames become raw AAC samples copied into slabs on their way to the file, each
 * with its place on the track's clock (gaps after damage counted as frames lost); at the end it gives
 * the TrackBuild its moov entry is made from. Pure: no I/O.
 */
import { type AdtsHeader, audioSpecificConfig, channelCount, parseAdts } from './adts.js';
import { MOVIE_TIMESCALE, type TrackBuild } from './mp4-moov-writer.js';
import { SampleTable } from './mp4-sample-table.js';
import { Pending, type Slabs } from './sample-slabs.js';
import { MAX_BACKWARDS, type Timeline, TS_HZ, Unwrapper } from './track-timeline.js';
import type { Pes } from './ts-pes-parser.js';

/** Bytes of an ADTS header without its CRC: what parseAdts needs to read one. */
const ADTS_HEADER = 7;

/** ADTS frames that start in `data` (a damaged PES's, for the count of frames dropped). */
function countFrames(data: Buffer): number {
  let n = 0;
  for (let at = 0; at + ADTS_HEADER <= data.length; ) {
    const h = parseAdts(data, at);
    if (h) {
      n++;
      at += h.frameLength;
    } else {
      const next = data.indexOf(0xff, at + 1);
      if (next < 0) break;
      at = next;
    }
  }
  return n;
}

export class AudioTrack {
  readonly table = new SampleTable();
  readonly pending = new Pending();
  private readonly clock: Unwrapper;
  private header: AdtsHeader | null = null;
  /** The start of a frame (or of its header) that the next PES continues. */
  private carry: Buffer | null = null;
  /** Time of the next frame in samples (the sample rate is the track's timescale). */
  private next: number | null = null;
  /** Presentation time of the first frame, on the 90 kHz clock. */
  start90 = 0;
  /** Frames left out after damage in transport, as the gap in the timestamps says. */
  private gapDropped = 0;
  /** Frames in damaged PES packets, counted before their gap is known. */
  private guessDropped = 0;

  /** Frames dropped because packets of them were lost or damaged in transport. */
  get dropped(): number {
    return this.gapDropped + this.guessDropped;
  }

  constructor(
    private readonly decline: (why: string) => void,
    private readonly slabs: Slabs,
    timeline: Timeline,
  ) {
    this.clock = new Unwrapper(timeline);
  }

  add(pes: Pes): void {
    if (pes.corrupt) {
      // Every frame with bytes from a damaged PES is left out, as `ffmpeg -fflags +discardcorrupt`
      // leaves out what its parser made of one; the next PES's timestamp places what follows.
      // An empty one stands for packets lost between two PES: frames went with them (at least one;
      // the gap before the next timestamp says how many).
      this.carry = null;
      this.guessDropped += Math.max(1, countFrames(pes.data));
      this.next = null;
      return;
    }
    const carried = this.carry?.length ?? 0;
    const data = this.carry ? Buffer.concat([this.carry, pes.data]) : pes.data;
    this.carry = null;
    const pts = pes.pts === null ? null : this.clock.map(pes.pts);
    // The PES's raw frames, back to back: one buffer to write for all of them.
    const frames = this.slabs.take(data.length);
    let used = 0;
    try {
      this.frames(data, carried, pts, frames, (n) => {
        used += n;
      });
    } finally {
      if (used > 0) this.pending.buffers.push(frames.subarray(0, used));
    }
  }

  private frames(
    data: Buffer,
    carried: number,
    pts: number | null,
    out: Buffer,
    wrote: (n: number) => void,
  ): void {
    let o = 0;
    let stamped = false;
    let at = 0;
    while (at < data.length) {
      if (at + ADTS_HEADER > data.length) {
        // A header cut by the end of the PES: the next one has the rest (a muxer's PES boundary
        // need not fall between frames).
        this.carry = Buffer.from(data.subarray(at));
        return;
      }
      const h = parseAdts(data, at);
      if (!h) {
        // Not a frame start: a damaged byte run, skipped up to the next sync word.
        const next = data.indexOf(0xff, at + 1);
        if (next < 0) return;
        at = next;
        continue;
      }
      if (at + h.frameLength > data.length) {
        this.carry = Buffer.from(data.subarray(at));
        return;
      }
      if (!this.accepts(h)) return;
      let time = this.next;
      // A PES timestamp belongs to the first frame that starts in that PES (13818-1 2.4.3.7).
      if (pts !== null && !stamped && at >= carried) {
        stamped = true;
        time = this.stampedTime(pts, time, h.sampleRate);
        if (Number.isNaN(time)) return;
      }
      if (time === null) {
        at += h.frameLength;
        continue; // audio before its first timestamp: nothing to place it by
      }
      const size = h.frameLength - h.headerLength;
      this.table.add(size, time, 0, true);
      data.copy(out, o, at + h.headerLength, at + h.frameLength);
      o += size;
      wrote(size);
      this.pending.samples++;
      this.next = time + 1024;
      at += h.frameLength;
    }
  }

  /**
   * The first frame's configuration becomes the track's; a later frame must have the same. False
   * when the remux declines (what an MP4 sample entry cannot carry).
   */
  private accepts(h: AdtsHeader): boolean {
    if (!this.header) {
      if (h.blocks !== 1) {
        this.decline('ADTS frames with several raw data blocks');
        return false;
      }
      if (h.channelConfig === 0) {
        this.decline('AAC with an in-band channel layout');
        return false;
      }
      this.header = h;
    } else if (
      h.objectType !== this.header.objectType ||
      h.sampleRateIndex !== this.header.sampleRateIndex ||
      h.channelConfig !== this.header.channelConfig ||
      h.blocks !== 1
    ) {
      this.decline('the AAC configuration changes within the stream');
      return false;
    }
    return true;
  }

  /**
   * The time (in samples) of the frame a PES timestamp `pts` belongs to, where the frames before put
   * it at `time` (null: unknown); NaN when the remux declines.
   */
  private stampedTime(pts: number, time: number | null, rate: number): number {
    const stampedTime = Math.round((pts * rate) / TS_HZ);
    if (this.table.count === 0 && time === null) {
      time = stampedTime;
      this.start90 = pts;
    } else if (time === null || Math.abs(stampedTime - time) > 512) {
      // A gap (or overlap) in the audio: the timestamps say where this frame goes, as in ffmpeg.
      if (time !== null && time - stampedTime > (MAX_BACKWARDS * rate) / TS_HZ) {
        this.decline('audio timestamps run backwards');
        return Number.NaN;
      }
      time = Math.max(stampedTime, this.lastTime() + 1);
    }
    if (this.guessDropped > 0 && this.table.count > 0) {
      // After damage the gap in the timeline is what was lost: the exact count.
      this.gapDropped += Math.max(0, Math.round((time - this.lastTime() - 1024) / 1024));
      this.guessDropped = 0;
    }
    return time;
  }

  private lastTime(): number {
    const t = this.table;
    return t.count > 0 ? t.lastDts : -Infinity;
  }

  build(id: number, origin: number): TrackBuild | string {
    const h = this.header;
    if (!h) return 'no AAC frames in the audio';
    this.table.lastDuration = 1024;
    return {
      id,
      timescale: h.sampleRate,
      entry: {
        kind: 'audio',
        sampleRate: h.sampleRate,
        channels: channelCount(h.channelConfig),
        asc: audioSpecificConfig(h),
      },
      table: this.table,
      mediaStart: 0,
      shown: this.table.mediaDuration,
      delay: ((this.start90 - origin) * MOVIE_TIMESCALE) / TS_HZ,
      language: 'und',
    };
  }
}
