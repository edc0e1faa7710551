/**
 * The fMP4 stream of one track file for the in-process remux: bytes arrive in order, cut anywhere
 * (one fetch per write, or a resumed file's replay), and whole top-level boxes are taken from them:
 * the init segment's moov (fmp4-init.ts), then each moof with the mdat after it (fmp4-fragment.ts),
 * whose samples go to the wanted tracks (fmp4-track.ts). styp, sidx, prft, emsg, free and other boxes
 * between fragments are skipped. The mdat is never held: each sample is copied out (into the
 * remux's slabs) once its bytes are in, so what waits is at most a moof and one sample. Anything it cannot carry faithfully it declines (the caller falls back to ffmpeg).
 * Pure: no I/O.
 */

import { readFragment } from './fmp4-fragment.js';
import { type Fmp4Init, parseInit } from './fmp4-init.js';
import { Fmp4Track } from './fmp4-track.js';
import { type Box, boxHeader } from './mp4-box-reader.js';
import { Slabs } from './sample-slabs.js';

/** A skipped box (free, sidx, ...) larger than this is not part of a stream: refused. */
const MAX_BOX = 2 ** 40;
/**
 * Most bytes of a moov or a moof held at once: they are read whole (a normal one is a few KB), and a
 * hostile origin must not make the reader hold a gigabyte. The mdat is never held: its samples are
 * copied out one by one as its bytes arrive.
 */
const MAX_HELD = 16 * 1024 * 1024;

/** A sample of the mdat being read, in file order. */
interface MdatSample {
  track: Fmp4Track;
  /** The traf's tfdt, on the first sample of each traf (undefined on the others). */
  base?: number | null;
  offset: number;
  size: number;
  duration: number;
  cts: number;
  sync: boolean;
}
/** Types the reader knows as the start of fMP4 (the first box of a track file). */
const FIRST_BOXES = new Set(['ftyp', 'styp', 'moov', 'sidx', 'free', 'skip', 'moof', 'emsg', 'prft']);

/** Whether `head` starts like ISO BMFF (an fMP4 track rather than MPEG-TS). */
export function looksFmp4(head: Buffer): boolean {
  const h = boxHeader(head, 0);
  return h !== null && FIRST_BOXES.has(h.type) && h.size >= h.header;
}

export class Fmp4Reader {
  video: Fmp4Track | null = null;
  audio: Fmp4Track | null = null;
  /** Why the stream cannot be remuxed here, once it is known. */
  unsupported: string | null = null;
  private init: Buffer | null = null;
  private parts: Buffer[] = [];
  private queued = 0;
  /** Bytes of a skipped box still to come. */
  private skipping = 0;
  private readonly byId = new Map<number, Fmp4Track>();
  private parsed: Fmp4Init | null = null;
  /** The mdat being read: its wanted samples in file order, and the reader's place in it. */
  private mdat: { at: number; end: number; samples: MdatSample[]; next: number } | null = null;

  /** `slabs`: where sample bytes are copied to (the remux's, recycled once written). */
  constructor(
    private readonly want: { video: boolean; audio: boolean },
    private readonly slabs = new Slabs(),
  ) {}

  /** Takes `chunk` (not kept: what is left over is copied before this returns). */
  push(chunk: Buffer): void {
    if (this.unsupported) return;
    let c = chunk;
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, c.length);
      this.skipping -= n;
      c = c.subarray(n);
    }
    if (c.length === 0) return;
    this.parts.push(c);
    this.queued += c.length;
    try {
      this.drain();
    } catch (err) {
      this.fail((err as Error).message);
    }
    // The caller reuses its buffers: keep a copy of what of this chunk waits for more bytes (parts
    // only go from the front, so that is the last part; earlier ones are copies already).
    const last = this.parts.at(-1);
    if (last && last.buffer === c.buffer && last.byteOffset >= c.byteOffset)
      this.parts[this.parts.length - 1] = Buffer.from(last);
  }

  /** Bytes held while waiting for the rest of a box or a sample. */
  get held(): number {
    return this.queued;
  }

  /** Takes one write's chunks; says why the stream cannot be remuxed here, if so. */
  write(chunks: readonly Buffer[]): string | null {
    for (const c of chunks) this.push(c);
    return this.unsupported;
  }

  /** The end of the stream: a box cut short is damage, not a box to wait for. */
  end(): void {
    if (!this.unsupported && (this.queued > 0 || this.skipping > 0 || this.mdat)) {
      this.fail('the stream ends inside a box');
    }
    if (!this.unsupported && !this.parsed) this.fail('no init segment (moov) in the fMP4 track');
  }

  private fail(why: string): void {
    this.unsupported ??= `fMP4: ${why}`;
    this.parts = [];
    this.queued = 0;
  }

  /** The first `n` bytes queued, or null when fewer are there. */
  private peek(n: number): Buffer | null {
    if (this.queued < n) return null;
    const first = this.parts[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const some: Buffer[] = [];
    for (let got = 0; got < n; got += some.at(-1)!.length) some.push(this.parts[some.length]!);
    return Buffer.concat(some).subarray(0, n);
  }

  /** Takes `n` bytes off the queue, into `out` (a buffer the reader owns). */
  private take(n: number, out: Buffer = Buffer.allocUnsafeSlow(n)): Buffer {
    let at = 0;
    while (at < n) {
      const p = this.parts[0]!;
      const k = Math.min(p.length, n - at);
      p.copy(out, at, 0, k);
      at += k;
      if (k === p.length) this.parts.shift();
      else this.parts[0] = p.subarray(k);
    }
    this.queued -= n;
    return out;
  }

  /** Drops `n` bytes, those queued now and those still to come, copying none of them. */
  private skip(n: number): void {
    this.skipping = n - this.drop(n);
  }

  /** Drops up to `n` of the bytes queued; returns how many. */
  private drop(n: number): number {
    const dropped = Math.min(n, this.queued);
    let left = dropped;
    this.queued -= left;
    while (left > 0) {
      const p = this.parts[0]!;
      if (p.length <= left) {
        left -= p.length;
        this.parts.shift();
      } else {
        this.parts[0] = p.subarray(left);
        left = 0;
      }
    }
    return dropped;
  }

  private header(at = 0) {
    const head = this.peek(at + 16) ?? this.peek(at + 8);
    const h = head && boxHeader(head, at);
    if (!h) return null;
    if (head.readUInt32BE(at) === 0) throw new Error(`a ${JSON.stringify(h.type)} box without a size`);
    if (h.size < h.header || h.size > MAX_BOX) throw new Error(`an unreadable ${JSON.stringify(h.type)} box`);
    return h;
  }

  private drain(): void {
    for (;;) {
      if (this.mdat) {
        if (!this.readMdat(this.mdat)) return;
        continue;
      }
      const h = this.header();
      if (!h) return;
      if (h.type === 'moov') {
        if (h.size > MAX_HELD) throw new Error(`a moov of ${h.size} bytes`);
        if (this.queued < h.size) return;
        this.onInit(this.take(h.size));
      } else if (h.type === 'moof') {
        if (h.size > MAX_HELD) throw new Error(`a moof of ${h.size} bytes`);
        const m = this.header(h.size);
        if (!m) return;
        if (m.type !== 'mdat') throw new Error(`a moof followed by ${JSON.stringify(m.type)}, not its mdat`);
        if (this.queued < h.size + m.header) return;
        const moof = this.take(h.size);
        this.drop(m.header);
        this.onFragment(moof, { ...h, start: 0 }, m);
      } else if (h.type === 'mdat') {
        throw new Error('an mdat without its moof');
      } else {
        this.skip(h.size);
      }
      if (this.unsupported) return;
    }
  }

  private onInit(moov: Buffer): void {
    if (this.init) {
      // The same init again (a playlist repeating EXT-X-MAP) changes nothing; another one would
      // need a second sample entry: ffmpeg merges that from the track files.
      if (!this.init.equals(moov)) this.fail('a new init segment within the stream');
      return;
    }
    this.init = moov;
    const init = parseInit(moov);
    this.parsed = init;
    const decline = (why: string) => this.fail(why);
    const pick = (handler: string) => init.tracks.find((t) => t.handler === handler);
    const video = this.want.video ? pick('vide') : undefined;
    const audio = this.want.audio ? pick('soun') : undefined;
    // A wanted track that is not there (an audio-only stream) is left out, as ffmpeg's -map 0:v?
    // leaves it; the job's stream checks decide whether the file may do without it.
    if (!video && !audio) throw new Error('no wanted track in the init segment');
    this.video = video ? new Fmp4Track(video, decline) : null;
    this.audio = audio ? new Fmp4Track(audio, decline) : null;
    for (const t of [this.video, this.audio]) if (t) this.byId.set(t.info.id, t);
  }

  /** Reads a moof: the samples of its wanted tracks, in file order, become the mdat to read. */
  private onFragment(b: Buffer, moof: Box, mdat: Box): void {
    const init = this.parsed;
    if (!init) throw new Error('a fragment before the init segment');
    const trex = (id: number) => init.tracks.find((t) => t.id === id)?.trex;
    const from = moof.size + mdat.header;
    const samples: (MdatSample & { order: number })[] = [];
    for (const run of readFragment(b, moof, from, moof.size + mdat.size, trex)) {
      const track = this.byId.get(run.trackId);
      if (!track) continue;
      for (let i = 0; i < run.sizes.length; i++) {
        samples.push({
          track,
          ...(i === 0 ? { base: run.baseTime } : {}),
          offset: run.offsets[i]!,
          size: run.sizes[i]!,
          duration: run.durations[i]!,
          cts: run.cts[i]!,
          sync: run.sync[i]!,
          order: samples.length,
        });
      }
    }
    // The bytes are read once, front to back: samples in file order, each track's still in decode
    // order (what every packager writes; anything else is ffmpeg's to sort out).
    samples.sort((x, y) => x.offset - y.offset);
    const last = new Map<Fmp4Track, number>();
    let end = from;
    for (const x of samples) {
      if (x.offset < end) throw new Error('samples that overlap in the mdat');
      if ((last.get(x.track) ?? -1) > x.order) throw new Error('samples out of decode order in the mdat');
      last.set(x.track, x.order);
      end = x.offset + x.size;
    }
    this.mdat = { at: from, end: moof.size + mdat.size, samples, next: 0 };
  }

  /** Copies out the samples whose bytes are here; true once the mdat is done. */
  private readMdat(d: NonNullable<Fmp4Reader['mdat']>): boolean {
    while (d.next < d.samples.length) {
      const x = d.samples[d.next]!;
      d.at += this.drop(x.offset - d.at);
      if (d.at < x.offset || this.queued < x.size) return false;
      const bytes = this.take(x.size, this.slabs.take(x.size));
      d.at += x.size;
      d.next++;
      if (x.base !== undefined) x.track.startRun(x.base);
      x.track.add(bytes, x.duration, x.cts, x.sync);
      if (this.unsupported) return false;
    }
    this.skip(d.end - d.at);
    this.mdat = null;
    return true;
  }
}

/**
 * Why the in-process remux cannot take an fMP4 track whose first bytes (init segment and first
 * fragment) are `head`, or null when it can; `want` says which of its tracks the MP4 takes.
 */
export function fmp4Refusal(head: Buffer | null, want: { video: boolean; audio: boolean }): string | null {
  if (!head || head.length === 0) return 'no data';
  const r = new Fmp4Reader(want);
  r.push(head);
  if (r.unsupported) return r.unsupported;
  if (!r.video && !r.audio)
    return want.video ? 'fMP4: no init segment in the first bytes' : 'fMP4: no audio track';
  return null;
}
