/**
 * H.264 access units out of the PES packets of an MPEG-TS video stream, as ffmpeg's h264 parser cuts
 * them. A PES is not an access unit: muxers that always set PES_packet_length must split a frame over
 * 64 KB across several PES, some split at every NAL unit, and a PES may even end inside a NAL unit.
 * ISO/IEC 13818-1 2.4.3.7 gives a PES's PTS/DTS to the first access unit that starts in it; a PES
 * without them continues what came before.
 *
 * An access unit ends where the next one starts (H.264 7.4.1.2.3): at an SEI, SPS, PPS or access unit
 * delimiter once the unit has a slice, or at a slice whose first_mb_in_slice is not after the previous
 * slice's (a new picture). Those are the rules of ffmpeg's parser, so that the samples come out as
 * `ffmpeg -c copy` writes them, byte for byte, whatever the PES layout.
 *
 * Each access unit is converted to MP4's form (every NAL unit behind its 4-byte length, 14496-15 5.3.4)
 * as its NAL units arrive, into buffers from `take`; it is handed on once the next one starts.
 */
import { hasRecoveryPoint, NAL_IDR, NAL_PPS, NAL_SEI, NAL_SPS, splitNals } from './h264.js';
import {
  type AccessUnit,
  firstMbInSlice,
  leadingStartCode,
  newUnit,
  type OpenUnit,
  START_CODE,
  type Stamp,
  unitBytes,
} from './h264-access-unit.js';

/** NAL unit types that begin a new access unit once the current one has a slice. */
const DELIMITS = new Uint8Array(32);
for (const t of [6, 7, 8, 9]) DELIMITS[t] = 1;
/** Coded slice NAL unit types (non-IDR, data partition A, IDR). */
const SLICE = new Uint8Array(32);
for (const t of [1, 2, 5]) SLICE[t] = 1;

export class H264Framer {
  private unit: OpenUnit | null = null;
  /** The timestamps of a PES no access unit has started in yet (ffmpeg gives them to the next). */
  private stamp: Stamp | null = null;
  /** The PES before ended with a start code: what the next one begins with is a new NAL unit. */
  private startPending = false;
  /** Packets were lost before the next PES: an access unit it continues has bytes missing. */
  private gap = false;
  /** The last unit handed on, reused for the next (the consumer keeps none of it but its parts). */
  private spare: OpenUnit | null = null;

  constructor(
    /** Room for `n` bytes of sample data (the caller's slabs). */
    private readonly take: (n: number) => Buffer,
    /**
     * Each SPS and PPS (header byte included) of an access unit once it is complete: a NAL unit
     * at the end of a PES may go on in the next one.
     */
    private readonly onParameterSet: (type: number, nal: Buffer) => void,
    /**
     * Each access unit, complete, in decode order. The object is reused for the next one: keep its
     * fields and the buffers in `parts`, not the object or the array.
     */
    private readonly onUnit: (au: AccessUnit) => void,
  ) {}

  private emit(u: OpenUnit): void {
    for (const part of u.params ? u.parts : []) {
      for (let at = 0; at + 4 < part.length; ) {
        const n = part.readUInt32BE(at);
        const type = part[at + 4]! & 0x1f;
        if (type === NAL_SPS || type === NAL_PPS)
          this.onParameterSet(type, part.subarray(at + 4, at + 4 + n));
        at += 4 + n;
      }
    }
    this.onUnit(u);
  }

  /** One PES's payload; `corrupt` when a packet of it was lost or damaged. */
  push(data: Buffer, pts: number | null, dts: number | null, corrupt = false): void {
    if (corrupt && data.length === 0) {
      // Nothing but the news that packets were lost: what comes next may continue a damaged unit.
      this.gap = true;
      return;
    }
    const gap = this.gap;
    this.gap = false;
    const stamp = pts === null && dts === null ? null : { at: 0, pts, dts };
    if (this.startPending) {
      // The start code is in the PES before (a muxer may cut right after it): put it back in front,
      // so the NAL unit that follows is not glued onto the one before it.
      this.startPending = false;
      const from = corrupt ? 0 : Number.POSITIVE_INFINITY;
      this.scan(Buffer.concat([START_CODE, data]), stamp, null, from, gap);
      return;
    }
    const open = this.unit;
    if (open && leadingStartCode(data) < 0) {
      // The PES begins inside a NAL unit (or a start code) of the open access unit: that unit is cut
      // again from its bytes and these, so no NAL unit is split in two. After lost packets that
      // NAL unit has a hole: the unit is damaged (and so, for want of telling, what follows here).
      if (gap) open.corrupt = true;
      this.unit = null;
      const raw = unitBytes(open);
      if (stamp) stamp.at = raw.length;
      const damagedFrom = open.corrupt ? 0 : corrupt ? raw.length : Number.POSITIVE_INFINITY;
      this.scan(Buffer.concat([raw, data]), { at: 0, pts: open.pts, dts: open.dts }, stamp, damagedFrom);
      return;
    }
    if (open && data[0] === 0 && data[1] === 0 && data[2] === 1) this.trimTrailingZero(open);
    this.scan(data, stamp, null, corrupt ? 0 : Number.POSITIVE_INFINITY, gap);
  }

  /** The end of the stream: the open access unit is complete. */
  end(): void {
    const open = this.unit;
    this.unit = null;
    if (open) this.emit(open);
  }

  /**
   * Copies the open access unit out of the caller's buffers, which are about to be reused (what has
   * been emitted is written; this one waits for its end).
   */
  detach(): void {
    const open = this.unit;
    if (!open || open.parts.length === 0) return;
    const copy = Buffer.allocUnsafe(open.size);
    let at = 0;
    for (const p of open.parts) {
      p.copy(copy, at);
      at += p.length;
    }
    open.lastNal += copy.length - open.parts.at(-1)!.length;
    open.parts = [copy];
  }

  /**
   * Splits `data` into NAL units and those into access units. `first` and `second` are PES
   * timestamps and where in `data` they apply from (in order); bytes from `damagedFrom` on came from a
   * damaged PES; `gap`: packets were lost right before `data`, so the open unit is damaged if its
   * first NAL unit continues it.
   */
  private scan(
    data: Buffer,
    first: Stamp | null,
    second: Stamp | null,
    damagedFrom: number,
    gap = false,
  ): void {
    // A new PES's timestamps replace those of one in which no access unit started.
    if (first && first.at === 0) this.stamp = null;
    let pending = first;
    const nals = splitNals(data);
    // A start code that ends the data: its NAL unit begins in the next PES.
    const n = data.length;
    if (n >= 3 && data[n - 3] === 0 && data[n - 2] === 0 && data[n - 1] === 1) this.startPending = true;
    /** The first NAL unit in `nals` (an index of its start) of the open unit not yet appended to it. */
    let from = 0;
    for (let k = 0; k < nals.length; k += 2) {
      const start = nals[k]!;
      const end = nals[k + 1]!;
      // Where its start code begins: a 4-byte one's first zero too.
      const codeAt = start >= 4 && data[start - 4] === 0 ? start - 4 : start - 3;
      const type = data[start]! & 0x1f;
      const slice = SLICE[type] === 1;
      const firstMb = slice ? firstMbInSlice(data, start + 1, end) : 0;
      let u = this.unit;
      if (!u || (u.hasSlice && (DELIMITS[type] === 1 || (slice && firstMb <= u.lastFirstMb)))) {
        if (u) {
          this.append(u, data, nals, from, k);
          this.emit(u);
          this.spare = u;
        }
        from = k;
        // The timestamps of the latest PES that began by here (ffmpeg's parser gives a frame those).
        while (pending && pending.at <= codeAt) {
          this.stamp = pending;
          pending = pending === first ? second : null;
        }
        const s = this.stamp;
        this.stamp = null;
        u = this.spare ?? newUnit();
        this.spare = null;
        u.parts.length = 0;
        u.size = 0;
        u.key = false;
        u.pts = s?.pts ?? null;
        u.dts = s?.dts ?? null;
        u.corrupt = false;
        u.hasSlice = false;
        u.lastFirstMb = -1;
        u.recovery = false;
        u.lastNal = 0;
        u.params = false;
        this.unit = u;
      } else if (gap) {
        u.corrupt = true;
      }
      gap = false;
      if (end > damagedFrom) u.corrupt = true;
      // ffmpeg decides a key frame from the NAL units up to the first slice.
      if (slice) {
        if (!u.hasSlice) u.key = type === NAL_IDR || u.recovery;
        u.hasSlice = true;
        u.lastFirstMb = firstMb;
      } else if (type === NAL_SEI) {
        if (!u.hasSlice && !u.recovery) u.recovery = hasRecoveryPoint(data.subarray(start, end));
      } else if (type === NAL_SPS || type === NAL_PPS) {
        u.params = true;
      }
    }
    if (this.unit) this.append(this.unit, data, nals, from, nals.length);
    // Timestamps of a PES in which no access unit started go to the next one that starts.
    while (pending) {
      this.stamp = pending;
      pending = pending === first ? second : null;
    }
  }

  /** NAL units [from, to) of `nals` ([start, end) pairs in `data`) appended to `u` in one part. */
  private append(u: OpenUnit, data: Buffer, nals: readonly number[], from: number, to: number): void {
    if (to <= from) return;
    let size = 0;
    for (let k = from; k < to; k += 2) size += 4 + nals[k + 1]! - nals[k]!;
    const out = this.take(size);
    let o = 0;
    for (let k = from; k < to; k += 2) {
      const start = nals[k]!;
      const end = nals[k + 1]!;
      u.lastNal = o;
      out.writeUInt32BE(end - start, o);
      data.copy(out, o + 4, start, end);
      o += 4 + end - start;
    }
    u.parts.push(out);
    u.size += size;
  }

  /**
   * The PES before ended with a zero and this one begins with 00 00 01: together a 4-byte start
   * code, whose first zero is not the NAL unit's (a NAL unit never ends with a zero byte, 7.4.1).
   */
  private trimTrailingZero(u: OpenUnit): void {
    const part = u.parts.at(-1);
    if (part?.at(-1) !== 0) return;
    const length = part.readUInt32BE(u.lastNal);
    if (length < 2) return;
    part.writeUInt32BE(length - 1, u.lastNal);
    u.parts[u.parts.length - 1] = part.subarray(0, part.length - 1);
    u.size--;
  }
}
