/**
 * The tracks of the in-process remux (src/pipeline/mux/in-process.ts), fed whole PES packets by the TS
 * demuxer: H.264 access units become length-prefixed samples, ADTS frames raw AAC samples, each with
 * its place on the track's clock, copied into slabs on their way to the file; at the end each gives
 * the TrackBuild its moov entry is made from. Pure: no I/O.
 */
import { type AdtsHeader, audioSpecificConfig, channelCount, parseAdts } from './adts.js';
import { avcConfig, NAL_PPS, NAL_SPS, parseSps, type Sps } from './h264.js';
import { type AccessUnit, H264Framer } from './h264-framer.js';
import { MOVIE_TIMESCALE, type TrackBuild } from './mp4-moov-writer.js';
import { SampleTable } from './mp4-sample-table.js';
import type { Pes } from './ts-pes-parser.js';

const WRAP = 2 ** 33;
const HALF_WRAP = 2 ** 32;
export const TS_HZ = 90_000;
/** Timestamps running backwards by more than this are a discontinuity, not jitter: ffmpeg's job. */
const MAX_BACKWARDS = TS_HZ;
/** The largest composition offset (PTS - DTS) a ctts entry holds: a signed 32-bit number. */
const MAX_COMPOSITION_OFFSET = 2 ** 31 - 1;
/** Distinct PPS kept for the avcC (streams use one or two). */
const MAX_PPS = 16;

/**
 * The one 90 kHz timeline of a remux's tracks. Each track unwraps its 33-bit timestamps (they wrap
 * every 26.5 hours) next to its own previous one, and its first next to the first any track had: a
 * video track that starts just before the wrap and an audio track that starts just after it then
 * stay 0.1 s apart instead of 26.5 hours (ffmpeg keeps one wrap reference per program for the same
 * reason). Separate renditions share the clock too (RFC 8216 6.2.4).
 */
export class Timeline {
  reference: number | null = null;
}

/** 33-bit PES timestamps of one track, on its Timeline. */
class Unwrapper {
  private last: number | null = null;
  constructor(private readonly timeline: Timeline) {}
  map(ts: number): number {
    const near = this.last ?? this.timeline.reference;
    const v = near === null ? ts : ts + Math.round((near - ts) / WRAP) * WRAP;
    this.timeline.reference ??= v;
    this.last = v;
    return v;
  }
}

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
  private readonly clock: Unwrapper;
  private readonly framer: H264Framer;
  private sps: Buffer | null = null;
  private spsInfo: Sps | null = null;
  private readonly pps: Buffer[] = [];
  private lastDts = -Infinity;
  firstDts = 0;
  /**
   * Presentation time of the first frame in decode order, where the track starts (ffmpeg's mov
   * muxer's start_cts): open-GOP leading pictures shown before it, which refer to a GOP that is not
   * there, stay before the edit.
   */
  firstPts = 0;
  maxPts = -Infinity;
  /** Access units dropped because packets of them were lost or damaged in transport. */
  dropped = 0;

  constructor(
    private readonly decline: (why: string) => void,
    slabs: Slabs,
    timeline: Timeline,
  ) {
    this.clock = new Unwrapper(timeline);
    this.framer = new H264Framer(
      (n) => slabs.take(n),
      (type, nal) => {
        if (type === NAL_SPS) this.onSps(nal);
        else if (type === NAL_PPS) this.onPps(nal);
      },
      (au) => this.place(au),
    );
  }

  add(pes: Pes): void {
    this.framer.push(pes.data, pes.pts, pes.dts, pes.corrupt);
  }

  /** The end of the stream: its last access unit is complete. */
  end(): void {
    this.framer.end();
  }

  /** The slabs are about to be reused: the access unit still open must not be in them. */
  detach(): void {
    this.framer.detach();
  }

  private place(au: AccessUnit): void {
    if (au.corrupt) {
      // What `ffmpeg -fflags +discardcorrupt` does: a frame with bytes missing or damaged is left out,
      // and the one before it lasts until the next (its timestamps keep the track in place).
      this.dropped++;
      return;
    }
    let dts: number;
    if (au.dts !== null) {
      dts = this.clock.map(au.dts);
    } else if (this.table.count > 0) {
      dts = this.lastDts + (this.table.lastDelta || 3000);
    } else {
      return; // a frame without any timestamp before the first one that has one: nothing to place it by
    }
    let offset = au.pts !== null && au.dts !== null ? au.pts - au.dts : 0;
    if (offset < -HALF_WRAP) offset += WRAP; // the PTS wrapped around before the DTS
    let pts = dts + offset;
    if (dts <= this.lastDts) {
      if (this.lastDts - dts > MAX_BACKWARDS) {
        this.decline('video timestamps run backwards');
        return;
      }
      // What ffmpeg does with a non-monotonic DTS in a stream copy: the next tick after the last.
      dts = this.lastDts + 1;
    }
    // No picture is shown before it is decoded: ffmpeg's muxer moves the PTS along with a DTS it
    // moved, and will not copy a packet whose PTS is before its DTS (a damaged timestamp).
    if (pts < dts) pts = dts;
    if (pts - dts > MAX_COMPOSITION_OFFSET) {
      // A damaged PTS (a high bit flipped): ctts cannot carry it, nor will ffmpeg's muxer.
      this.decline('a video PTS too far after its DTS');
      return;
    }
    if (this.table.count === 0) {
      this.firstDts = dts;
      this.firstPts = pts;
    }
    this.lastDts = dts;
    if (pts > this.maxPts) this.maxPts = pts;
    this.table.add(au.size, dts, Math.round(pts - dts), au.key);
    for (const part of au.parts) this.pending.buffers.push(part);
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
      mediaStart: Math.max(0, this.firstPts - this.firstDts),
      // From the first frame shown to the end of the last one shown (B-frames: not the decode order's).
      shown: this.maxPts + t.lastDuration - this.firstPts,
      delay: ((this.firstPts - origin) * MOVIE_TIMESCALE) / TS_HZ,
      language: 'und',
    };
  }
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
        if (this.table.count === 0 && time === null) {
          time = stampedTime;
          this.start90 = pts;
        } else if (time === null || Math.abs(stampedTime - time) > 512) {
          // A gap (or overlap) in the audio: the timestamps say where this frame goes, as in ffmpeg.
          if (time !== null && time - stampedTime > (MAX_BACKWARDS * rate) / TS_HZ) {
            this.decline('audio timestamps run backwards');
            return;
          }
          time = Math.max(stampedTime, this.lastTime() + 1);
        }
        if (this.guessDropped > 0 && this.table.count > 0) {
          // After damage the gap in the timeline is what was lost: the exact count.
          this.gapDropped += Math.max(0, Math.round((time - this.lastTime() - 1024) / 1024));
          this.guessDropped = 0;
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
