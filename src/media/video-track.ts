/**
 * The H.264 track of the in-process remux (src/pipeline/mux/in-process.ts), fed whole PES packets by
 * the TS demuxer: access units become length-prefixed samples copied into slabs on their way to the
 * file, each with its place on the track's clock; SPS and PPS are kept for the avcC; at the end it
 * gives the TrackBuild its moov entry is made from. Pure: no I/O.
 */
import { avcConfig, NAL_PPS, NAL_SPS, parseSps, type Sps } from './h264.js';
import type { AccessUnit } from './h264-access-unit.js';
import { H264Framer } from './h264-framer.js';
import { MOVIE_TIMESCALE, type TrackBuild } from './mp4-moov-writer.js';
import { SampleTable } from './mp4-sample-table.js';
import { Pending, type Slabs } from './sample-slabs.js';
import { HALF_WRAP, MAX_BACKWARDS, type Timeline, TS_HZ, Unwrapper, WRAP } from './track-timeline.js';
import type { Pes } from './ts-pes-parser.js';

/** The largest composition offset (PTS - DTS) a ctts entry holds: a signed 32-bit number. */
const MAX_COMPOSITION_OFFSET = 2 ** 31 - 1;
/** Distinct PPS kept for the avcC (streams use one or two). */
const MAX_PPS = 16;

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
