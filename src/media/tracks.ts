/**
 * The tracks of the in-process remux (src/download/native.ts), fed whole PES packets by the TS
 * demuxer: H.264 access units become length-prefixed samples, ADTS frames raw AAC samples, each with
 * its place on the track's clock, copied into slabs on their way to the file; at the end each gives
 * the TrackBuild its moov entry is made from. Pure: no I/O.
 */
import { type AdtsHeader, audioSpecificConfig, channelCount, parseAdts } from './adts.js';
import { avcConfig, NAL_IDR, NAL_PPS, NAL_SPS, parseSps, type Sps, splitNals } from './h264.js';
import { MOVIE_TIMESCALE, SampleTable, type TrackBuild } from './mp4box.js';
import type { Pes } from './tsdemux.js';

const WRAP = 2 ** 33;
const HALF_WRAP = 2 ** 32;
export const TS_HZ = 90_000;
/** Timestamps running backwards by more than this are a discontinuity, not jitter: ffmpeg's job. */
const MAX_BACKWARDS = TS_HZ;
/** Distinct PPS kept for the avcC (streams use one or two). */
const MAX_PPS = 16;

/** 33-bit PES timestamps made monotonic across wrap-arounds (every 26.5 hours). */
class Unwrapper {
  private last: number | null = null;
  private offset = 0;
  map(ts: number): number {
    let v = ts + this.offset;
    if (this.last !== null) {
      if (v < this.last - HALF_WRAP) {
        this.offset += WRAP;
        v += WRAP;
      } else if (v > this.last + HALF_WRAP && this.offset >= WRAP) {
        this.offset -= WRAP;
        v -= WRAP;
      }
    }
    this.last = v;
    return v;
  }
}

/** Bytes of one slab: frames are copied into slabs, each reused once the writes using it are done. */
const SLAB = 1024 * 1024;

/**
 * Where demuxed frames are copied to on their way to the file. A fresh buffer per frame would put
 * another 240 MB through V8's external-memory accounting per 240 MB stream, and every ~64 MB of that
 * starts a full garbage collection; slabs recycled after their write keep it at a few megabytes.
 */
export class Slabs {
  private current: Buffer = Buffer.allocUnsafeSlow(SLAB);
  private used = 0;
  private readonly free: Buffer[] = [];
  private retired: Buffer[] = [];

  take(n: number): Buffer {
    if (n > SLAB / 4) return Buffer.allocUnsafeSlow(n);
    if (this.used + n > this.current.length) {
      this.retired.push(this.current);
      this.current = this.free.pop() ?? Buffer.allocUnsafeSlow(SLAB);
      this.used = 0;
    }
    const view = this.current.subarray(this.used, this.used + n);
    this.used += n;
    return view;
  }

  /**
   * The slabs filled before now: every frame in them is in the write being queued, so they can be
   * reused once it is done.
   */
  release(): () => void {
    const done = this.retired;
    this.retired = [];
    return () => {
      this.free.push(...done);
    };
  }
}

/** Frames demuxed and not yet written: their bytes, and how many samples they are. */
class Pending {
  buffers: Buffer[] = [];
  samples = 0;
}

export class VideoTrack {
  readonly table = new SampleTable();
  readonly pending = new Pending();
  private readonly clock = new Unwrapper();
  private sps: Buffer | null = null;
  private spsInfo: Sps | null = null;
  private readonly pps: Buffer[] = [];
  private lastDts = -Infinity;
  firstDts = 0;
  minPts = Infinity;
  maxPts = -Infinity;

  constructor(
    private readonly decline: (why: string) => void,
    private readonly slabs: Slabs,
  ) {}

  add(pes: Pes): void {
    const data = pes.data;
    const nals = splitNals(data);
    if (nals.length === 0) return;
    let size = 0;
    for (let k = 0; k < nals.length; k += 2) size += 4 + nals[k + 1]! - nals[k]!;
    // The sample as MP4 stores it: each NAL unit behind its 4-byte length instead of a start code.
    const sample = this.slabs.take(size);
    let key = false;
    for (let k = 0, o = 0; k < nals.length; k += 2) {
      const start = nals[k]!;
      const end = nals[k + 1]!;
      const type = data[start]! & 0x1f;
      if (type === NAL_IDR) key = true;
      else if (type === NAL_SPS) this.onSps(data.subarray(start, end));
      else if (type === NAL_PPS) this.onPps(data.subarray(start, end));
      sample.writeUInt32BE(end - start, o);
      data.copy(sample, o + 4, start, end);
      o += 4 + end - start;
    }
    let dts: number;
    if (pes.dts !== null) {
      dts = this.clock.map(pes.dts);
    } else if (this.table.count > 0) {
      dts = this.lastDts + (this.table.lastDelta || 3000);
    } else {
      return; // a frame without any timestamp before the first one that has one: nothing to place it by
    }
    let offset = pes.pts !== null && pes.dts !== null ? pes.pts - pes.dts : 0;
    if (offset < -HALF_WRAP) offset += WRAP; // the PTS wrapped around before the DTS
    const pts = dts + offset;
    if (dts <= this.lastDts) {
      if (this.lastDts - dts > MAX_BACKWARDS) {
        this.decline('video timestamps run backwards');
        return;
      }
      // What ffmpeg does with a non-monotonic DTS in a stream copy: the next tick after the last.
      dts = this.lastDts + 1;
    }
    if (this.table.count === 0) this.firstDts = dts;
    this.lastDts = dts;
    if (pts < this.minPts) this.minPts = pts;
    if (pts > this.maxPts) this.maxPts = pts;
    this.table.add(size, dts, Math.round(pts - dts), key);
    this.pending.buffers.push(sample);
    this.pending.samples++;
  }

  private onSps(nal: Buffer): void {
    if (!this.sps) {
      try {
        this.spsInfo = parseSps(nal);
      } catch (err) {
        this.decline(`an unreadable SPS (${(err as Error).message})`);
        return;
      }
      this.sps = Buffer.from(nal);
    } else if (!this.sps.equals(nal)) {
      this.decline('the SPS changes within the stream');
    }
  }

  private onPps(nal: Buffer): void {
    if (this.pps.some((p) => p.equals(nal))) return;
    if (this.pps.length >= MAX_PPS) {
      this.decline('too many picture parameter sets');
      return;
    }
    this.pps.push(Buffer.from(nal));
  }

  build(id: number, origin: number): TrackBuild | string {
    const t = this.table;
    if (!this.sps || !this.spsInfo || this.pps.length === 0) return 'no SPS/PPS in the video';
    // The last frame lasts as long as the one before it (ffmpeg takes the frame rate; same thing).
    t.lastDuration = t.lastDelta || 3000;
    const info = this.spsInfo;
    return {
      id,
      timescale: TS_HZ,
      entry: {
        kind: 'video',
        width: info.width,
        height: info.height,
        sarWidth: info.sarWidth,
        sarHeight: info.sarHeight,
        avcC: avcConfig(this.sps, this.pps, info),
      },
      table: t,
      mediaStart: Math.max(0, this.minPts - this.firstDts),
      // From the first frame shown to the end of the last one shown (B-frames: not the decode order's).
      shown: this.maxPts + t.lastDuration - this.minPts,
      delay: ((this.minPts - origin) * MOVIE_TIMESCALE) / TS_HZ,
      language: 'und',
    };
  }
}

export class AudioTrack {
  readonly table = new SampleTable();
  readonly pending = new Pending();
  private readonly clock = new Unwrapper();
  private header: AdtsHeader | null = null;
  private carry: Buffer | null = null;
  /** Time of the next frame in samples (the sample rate is the track's timescale). */
  private next: number | null = null;
  /** Presentation time of the first frame, on the 90 kHz clock. */
  start90 = 0;

  constructor(
    private readonly decline: (why: string) => void,
    private readonly slabs: Slabs,
  ) {}

  add(pes: Pes): void {
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
      const h = parseAdts(data, at);
      if (!h) {
        // Not a frame start: a damaged byte run, skipped up to the next sync word.
        const next = data.indexOf(0xff, at + 1);
        if (next < 0) return;
        if (next + 7 > data.length) {
          this.carry = Buffer.from(data.subarray(next));
          return;
        }
        at = next;
        continue;
      }
      if (at + h.frameLength > data.length) {
        this.carry = Buffer.from(data.subarray(at));
        return;
      }
      if (!this.header) {
        if (h.blocks !== 1) {
          this.decline('ADTS frames with several raw data blocks');
          return;
        }
        if (h.channelConfig === 0) {
          this.decline('AAC with an in-band channel layout');
          return;
        }
        this.header = h;
      } else if (
        h.objectType !== this.header.objectType ||
        h.sampleRateIndex !== this.header.sampleRateIndex ||
        h.channelConfig !== this.header.channelConfig ||
        h.blocks !== 1
      ) {
        this.decline('the AAC configuration changes within the stream');
        return;
      }
      const rate = this.header.sampleRate;
      let time = this.next;
      // A PES timestamp belongs to the first frame that starts in that PES (13818-1 2.4.3.7).
      if (pts !== null && !stamped && at >= carried) {
        stamped = true;
        const stampedTime = Math.round((pts * rate) / TS_HZ);
        if (time === null) {
          time = stampedTime;
          this.start90 = pts;
        } else if (Math.abs(stampedTime - time) > 512) {
          // A gap (or overlap) in the audio: the timestamps say where this frame goes, as in ffmpeg.
          if (time - stampedTime > (MAX_BACKWARDS * rate) / TS_HZ) {
            this.decline('audio timestamps run backwards');
            return;
          }
          time = Math.max(stampedTime, this.lastTime() + 1);
        }
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
