/**
 * The MP4 remux of H.264/AAC MPEG-TS tracks done in this process, instead of by an ffmpeg process:
 * segments are demuxed as they arrive and their frames appended to the file's mdat in one sequential
 * write, the sample tables kept in typed arrays; at the end the moov goes into the space reserved in
 * front (or, when that is too small, in front of a copy). It produces what `ffmpeg -c copy` would,
 * sample for sample, at a fraction of the CPU and without ffmpeg's ~60 MB process.
 *
 * Streams it does not handle it refuses up front (nativeRefusal, from the first bytes) or, when
 * something changes midway (a new SPS, a new program map, timestamps running backwards), declines at
 * finish() with NativeDeclined: the caller then merges from the track files with ffmpeg, as before.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { GabeError } from '../errors.js';
import { type AdtsHeader, audioSpecificConfig, channelCount, parseAdts } from '../media/adts.js';
import { avcConfig, NAL_IDR, NAL_PPS, NAL_SPS, parseSps, type Sps, splitNals } from '../media/h264.js';
import {
  buildMoov,
  freeHeader,
  ftyp,
  MDAT_HEADER,
  MOVIE_TIMESCALE,
  mdatHeader,
  SampleTable,
  type TrackBuild,
} from '../media/mp4box.js';
import { type Pes, TsDemuxer } from '../media/tsdemux.js';
import type { TrackSink } from './merger.js';

/** The remux gave up on a stream it cannot carry faithfully; ffmpeg takes over from the track files. */
export class NativeDeclined extends Error {
  override readonly name = 'NativeDeclined';
}

export interface NativeMergerOptions {
  separateAudio: boolean;
  audioOnly?: boolean;
  output: string;
  /** Bytes reserved in front for the moov; null = none (the moov then goes in front of a copy). */
  moovReserve: number | null;
  signal: AbortSignal;
}

const WRAP = 2 ** 33;
const HALF_WRAP = 2 ** 32;
const TS_HZ = 90_000;
/** Timestamps running backwards by more than this are a discontinuity, not jitter: ffmpeg's job. */
const MAX_BACKWARDS = TS_HZ;
/** Largest gap between the first timestamps of a video and a separate audio rendition taken as sync. */
const MAX_RENDITION_OFFSET = TS_HZ;
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
class Slabs {
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

class VideoTrack {
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

class AudioTrack {
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

/**
 * Why the native remux cannot take a stream whose first bytes are `head` (null: it can), so the
 * choice is made before any byte is muxed. `want` says which of its streams the MP4 takes.
 */
export function nativeRefusal(head: Buffer | null, want: { video: boolean; audio: boolean }): string | null {
  if (!head || head.length === 0) return 'no data';
  const d = new TsDemuxer({}, want);
  d.push(head);
  if (d.unsupported) return d.unsupported;
  return d.ready ? null : 'no MPEG-TS program map in the first segment';
}

export class NativeMerger {
  readonly main: TrackSink;
  readonly audio: TrackSink | null;
  private readonly video: VideoTrack | null;
  private readonly sound: AudioTrack | null;
  private readonly demuxers: TsDemuxer[] = [];
  private readonly slabs = new Slabs();
  private declined: string | null = null;
  private fh: Promise<FileHandle>;
  private tail: Promise<unknown>;
  /** Bytes of media written after the mdat header. */
  private written = 0;
  private readonly dataStart: number;
  private closed = false;

  constructor(private readonly options: NativeMergerOptions) {
    const decline = (why: string) => {
      this.declined ??= why;
    };
    const wantVideo = !options.audioOnly;
    this.video = wantVideo ? new VideoTrack(decline, this.slabs) : null;
    this.sound = new AudioTrack(decline, this.slabs);
    const mainDemuxer = new TsDemuxer(
      {
        video: (pes) => this.video?.add(pes),
        audio: (pes) => this.sound?.add(pes),
      },
      { video: wantVideo, audio: !options.separateAudio },
    );
    this.demuxers.push(mainDemuxer);
    this.main = this.sink(mainDemuxer);
    if (options.separateAudio) {
      const audioDemuxer = new TsDemuxer(
        { audio: (pes) => this.sound?.add(pes) },
        { video: false, audio: true },
      );
      this.demuxers.push(audioDemuxer);
      this.audio = this.sink(audioDemuxer);
    } else {
      this.audio = null;
    }
    const reserve = (options.moovReserve ?? 0) >= 8 ? options.moovReserve! : 0;
    const type = ftyp();
    this.dataStart = type.length + reserve + MDAT_HEADER;
    this.fh = open(options.output, 'w');
    this.tail = this.fh.then(async (fh) => {
      await fh.write(reserve > 0 ? Buffer.concat([type, freeHeader(reserve)]) : type, 0, undefined, 0);
      await fh.write(mdatHeader(0), 0, MDAT_HEADER, this.dataStart - MDAT_HEADER);
    });
    this.tail.catch(() => {});
  }

  private sink(demuxer: TsDemuxer): TrackSink {
    return {
      write: async (chunks) => {
        if (this.closed) throw new GabeError('CANCELLED', 'the merge was stopped');
        // The demuxer copies what it keeps: the caller may reuse the chunks once this resolves.
        if (this.declined) return true;
        for (const c of chunks) demuxer.push(c);
        if (demuxer.unsupported) this.declined ??= demuxer.unsupported;
        if (this.declined) return true;
        await this.flush();
        return true;
      },
    };
  }

  /** Appends what the tracks have ready, one chunk per track, in one writev. */
  private flush(): Promise<unknown> {
    const iov: Buffer[] = [];
    const at = this.dataStart + this.written;
    for (const t of [this.video, this.sound]) {
      if (!t || t.pending.samples === 0) continue;
      t.table.addChunk(this.written, t.pending.samples);
      for (const b of t.pending.buffers) {
        // Frames copied back to back into a slab go out as one piece.
        const last = iov.at(-1);
        if (last && last.buffer === b.buffer && last.byteOffset + last.length === b.byteOffset) {
          iov[iov.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + b.length);
        } else {
          iov.push(b);
        }
        this.written += b.length;
      }
      t.pending.buffers = [];
      t.pending.samples = 0;
    }
    if (iov.length === 0) return this.tail;
    const release = this.slabs.release();
    this.tail = this.tail.then(async () => {
      const fh = await this.fh;
      await fh.writev(iov, at);
      release();
    });
    return this.tail;
  }

  /** Ends the tracks and writes the moov; throws NativeDeclined when ffmpeg should do it instead. */
  async finish(): Promise<void> {
    if (this.closed) throw new GabeError('CANCELLED', 'the merge was stopped');
    for (const d of this.demuxers) d.end();
    if (!this.declined) await this.flush();
    await this.tail;
    const tracks = this.declined ? [] : this.builds();
    if (this.declined) {
      await this.abort();
      throw new NativeDeclined(this.declined);
    }
    const fh = await this.fh;
    await fh.write(mdatHeader(this.written), 0, MDAT_HEADER, this.dataStart - MDAT_HEADER);
    const reserve = this.options.moovReserve ?? 0;
    const moov = buildMoov(tracks, this.dataStart);
    const typeSize = ftyp().length;
    if (reserve >= 8 && (moov.length === reserve || moov.length + 8 <= reserve)) {
      const rest = reserve - moov.length;
      await fh.write(rest > 0 ? Buffer.concat([moov, freeHeader(rest)]) : moov, 0, undefined, typeSize);
      await fh.close();
      this.closed = true;
      return;
    }
    // No room in front: the file is rewritten with the moov first (what +faststart does).
    await fh.close();
    this.closed = true;
    await this.relocate(tracks, typeSize);
  }

  private builds(): TrackBuild[] {
    const origins: number[] = [];
    if (this.video && this.video.table.count > 0) origins.push(this.video.minPts);
    if (this.sound && this.sound.table.count > 0) origins.push(this.sound.start90);
    if (origins.length === 0) {
      this.declined = 'no frames in the tracks';
      return [];
    }
    // Renditions share one clock (RFC 8216 6.2.4: matching content has matching timestamps), so a
    // separate audio rendition is placed by its timestamps. Starts further apart than any real A/V
    // offset mean clocks that were never aligned: each track then starts at 0, as ffmpeg starts
    // separate inputs.
    const aligned =
      !this.options.separateAudio || Math.max(...origins) - Math.min(...origins) <= MAX_RENDITION_OFFSET;
    const out: TrackBuild[] = [];
    for (const t of [this.video, this.sound]) {
      if (!t || t.table.count === 0) continue;
      const start = t === this.video ? this.video.minPts : this.sound!.start90;
      const built = t.build(out.length + 1, aligned ? Math.min(...origins) : start);
      if (typeof built === 'string') {
        this.declined = built;
        return [];
      }
      out.push(built);
    }
    return out;
  }

  private async relocate(tracks: TrackBuild[], typeSize: number): Promise<void> {
    const sized = buildMoov(tracks, 0);
    const dataStart = typeSize + sized.length + MDAT_HEADER;
    let moov = buildMoov(tracks, dataStart);
    // Offsets past 4 GB turn stco into co64, which changes the moov's size: build once more then.
    if (moov.length !== sized.length) moov = buildMoov(tracks, typeSize + moov.length + MDAT_HEADER);
    const copy = `${this.options.output}.faststart`;
    const out = createWriteStream(copy);
    out.write(Buffer.concat([ftyp(), moov, mdatHeader(this.written)]));
    await pipeline(
      createReadStream(this.options.output, { start: this.dataStart, highWaterMark: 1024 * 1024 }),
      out,
      { signal: this.options.signal },
    );
    await rename(copy, this.options.output);
  }

  /** Stops after a failure elsewhere: the partial output is removed. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.tail.catch(() => {});
      await (await this.fh.catch(() => null))?.close().catch(() => {});
    }
    await rm(this.options.output, { force: true });
    await rm(`${this.options.output}.faststart`, { force: true });
  }
}
