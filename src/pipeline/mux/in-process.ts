/**
 * The MP4 remux of H.264/AAC MPEG-TS tracks, or of fMP4 tracks (media/fmp4-reader.ts), done in this
 * process instead of by an ffmpeg process: segments are demuxed as they arrive and their frames
 * appended to the file's mdat in one sequential write, the sample tables kept in typed arrays; at the
 * end the moov goes into the space reserved in front (or, when that is too small, in front of a
 * copy). It produces what `ffmpeg -c copy` would, sample for sample, at a fraction of the CPU.
 *
 * Streams it does not handle it refuses up front (nativeRefusal, from the first bytes) or, when
 * something changes midway (a new SPS, a new program map, timestamps running backwards), declines at
 * finish() with NativeDeclined: the caller then merges from the track files with ffmpeg, as before.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { AudioTrack } from '../../media/audio-track.js';
import type { FileTags } from '../../media/file-tags.js';
import { Fmp4Reader } from '../../media/fmp4-reader.js';
import type { Fmp4Track } from '../../media/fmp4-track.js';
import { iso639_2 } from '../../media/language.js';
import { freeHeader, ftyp, MDAT_HEADER, mdatHeader } from '../../media/mp4-box-writer.js';
import { buildMoov, type TrackBuild } from '../../media/mp4-moov-writer.js';
import { Slabs } from '../../media/sample-slabs.js';
import { Timeline } from '../../media/track-timeline.js';
import { damageNote, sumDamage, type TransportDamage } from '../../media/ts-continuity.js';
import { TsDemuxer } from '../../media/ts-demuxer.js';
import type { Pes } from '../../media/ts-pes-parser.js';
import { VideoTrack } from '../../media/video-track.js';
import { GabeError } from '../../service/errors.js';
import type { TrackSink } from './sink.js';

/** The remux gave up on a stream it cannot carry faithfully; ffmpeg takes over from the track files. */
export class NativeDeclined extends Error {
  override readonly name = 'NativeDeclined';
}

export interface NativeMergerOptions {
  /** What the tracks are: MPEG-TS (the default) or fMP4, init segment and fragments. */
  format?: 'ts' | 'fmp4';
  separateAudio: boolean;
  audioOnly?: boolean;
  output: string;
  /** Bytes reserved in front for the moov; null = none (the moov then goes in front of a copy). */
  moovReserve: number | null;
  signal: AbortSignal;
  /**
   * Called once the output exists, with the bytes at its start that finish() rewrites: past them
   * the file only grows, in order, so it can be uploaded while it is written. Not called without a
   * moovReserve (the file then ends up in a new copy).
   */
  onOpen?: (file: string, headerBytes: number) => void;
  /** Title and source, into the moov's udta. */
  tags?: FileTags;
  /** The separate audio rendition's language tag, for its track's mdhd. */
  audioLanguage?: string | null;
}

/** Starts of the tracks further apart than this (90 kHz ticks) are worth a warning: rarely meant. */
const LARGE_TRACK_OFFSET = 10 * 90_000;

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
  private readonly readers: Fmp4Reader[] = [];
  private readonly slabs = new Slabs();
  private declined: string | null = null;
  /** What the finished file should be read with (job result and log): damage, odd offsets. */
  readonly warnings: string[] = [];
  /** Transport damage found in the tracks, once finish() has run. */
  damage: (TransportDamage & { droppedVideo: number; droppedAudio: number }) | null = null;
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
    const fmp4 = options.format === 'fmp4';
    const timeline = new Timeline();
    this.video = wantVideo && !fmp4 ? new VideoTrack(decline, this.slabs, timeline) : null;
    this.sound = fmp4 ? null : new AudioTrack(decline, this.slabs, timeline);
    const tracks = [{ video: wantVideo, audio: !options.separateAudio }];
    if (options.separateAudio) tracks.push({ video: false, audio: true });
    const on = { video: (p: Pes) => this.video?.add(p), audio: (p: Pes) => this.sound?.add(p) };
    const sinks = tracks.map((want) => {
      if (fmp4) {
        const reader = new Fmp4Reader(want, this.slabs);
        this.readers.push(reader);
        return this.sink((chunks) => reader.write(chunks));
      }
      const demuxer = new TsDemuxer(on, want);
      this.demuxers.push(demuxer);
      return this.sink((chunks) => {
        // One write is one fetch: a segment whose continuity counters start afresh is no loss.
        demuxer.boundary();
        for (const c of chunks) demuxer.push(c);
        return demuxer.unsupported;
      });
    });
    this.main = sinks[0]!;
    this.audio = sinks[1] ?? null;
    const reserve = (options.moovReserve ?? 0) >= 8 ? options.moovReserve! : 0;
    const type = ftyp();
    this.dataStart = type.length + reserve + MDAT_HEADER;
    this.fh = open(options.output, 'w');
    this.tail = this.fh.then(async (fh) => {
      await fh.write(reserve > 0 ? Buffer.concat([type, freeHeader(reserve)]) : type, 0, undefined, 0);
      await fh.write(mdatHeader(0), 0, MDAT_HEADER, this.dataStart - MDAT_HEADER);
      // Without room for the moov the file is rewritten into a copy at the end: nothing sent early
      // would be of use, so it is not announced.
      if (reserve > 0) options.onOpen?.(options.output, this.dataStart);
    });
    this.tail.catch(() => {});
  }

  /** A track's sink: `feed` takes a write's chunks and says why the remux cannot go on, if so. */
  private sink(feed: (chunks: readonly Buffer[]) => string | null): TrackSink {
    return {
      write: async (chunks) => {
        if (this.closed) throw new GabeError('CANCELLED', 'the merge was stopped');
        // The demuxers copy what they keep: the caller may reuse the chunks once this resolves.
        if (this.declined) return true;
        // Not `declined ??= feed()`: that reads `declined` before the tracks' own declines in feed().
        const why = feed(chunks);
        this.declined ??= why;
        if (this.declined) return true;
        await this.flush();
        return true;
      },
    };
  }

  /** The tracks of the MP4, in order: video first. */
  private tracks(): (VideoTrack | AudioTrack | Fmp4Track)[] {
    const main = this.readers[0];
    return [main ? main.video : this.video, this.audioTrack()].filter((t) => t !== null);
  }

  /** The audio track: the MPEG-TS one, or that of the fMP4 audio rendition, else of the main fMP4. */
  private audioTrack(): AudioTrack | Fmp4Track | null {
    const [main, audio] = this.readers;
    return main ? (audio ?? main).audio : this.sound;
  }

  /** Appends what the tracks have ready, one chunk per track, in one writev. */
  private flush(): Promise<unknown> {
    // The access unit still open may sit in a slab that the write below lets go of.
    this.video?.detach();
    const iov: Buffer[] = [];
    const at = this.dataStart + this.written;
    for (const t of this.tracks()) {
      if (t.pending.samples === 0) continue;
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
    for (const r of this.readers) {
      r.end();
      this.declined ??= r.unsupported;
    }
    this.video?.end();
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
    const moov = buildMoov(tracks, this.dataStart, this.options.tags);
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
    const tracks = this.tracks().filter((t) => t.table.count > 0);
    const starts = tracks.map((t) => (t instanceof VideoTrack ? t.firstPts : t.start90));
    if (starts.length === 0) {
      this.declined = 'no frames in the tracks';
      return [];
    }
    // Every track is placed by its timestamps on the one timeline, as `ffmpeg -c copy` keeps the
    // offset between the streams of a playlist: renditions share one clock (RFC 8216 6.2.4), so
    // audio that starts 2 s after the video starts 2 s into the file.
    const origin = Math.min(...starts);
    const spread = Math.max(...starts) - origin;
    if (spread > LARGE_TRACK_OFFSET) {
      this.warnings.push(
        `the audio and video start ${(spread / 90_000).toFixed(1)} s apart by their timestamps; kept as the stream says`,
      );
    }
    const out: TrackBuild[] = [];
    for (const t of tracks) {
      const built = t.build(out.length + 1, origin);
      if (typeof built === 'string') {
        this.declined = built;
        return [];
      }
      if (t === this.audioTrack() && this.options.audioLanguage)
        built.language = iso639_2(this.options.audioLanguage);
      out.push(built);
    }
    const damage = this.damageNote();
    if (damage) this.warnings.push(damage);
    return out;
  }

  /** What transport damage cost the tracks, in words, or null when there was none. */
  private damageNote(): string | null {
    const total = sumDamage(this.demuxers.map((d) => d.damage));
    const video = this.video?.dropped ?? 0;
    const audio = this.sound?.dropped ?? 0;
    this.damage = { ...total, droppedVideo: video, droppedAudio: audio };
    return damageNote(total, video, audio);
  }

  private async relocate(tracks: TrackBuild[], typeSize: number): Promise<void> {
    const tags = this.options.tags;
    const sized = buildMoov(tracks, 0, tags);
    const dataStart = typeSize + sized.length + MDAT_HEADER;
    let moov = buildMoov(tracks, dataStart, tags);
    // Offsets past 4 GB turn stco into co64, which changes the moov's size: build once more then.
    if (moov.length !== sized.length) moov = buildMoov(tracks, typeSize + moov.length + MDAT_HEADER, tags);
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
