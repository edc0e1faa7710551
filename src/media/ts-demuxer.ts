/**
 * An MPEG-TS demuxer for the streams an MP4 remux of HLS needs: the first program's H.264 video and
 * ADTS AAC audio, as whole PES payloads with their timestamps (ISO/IEC 13818-1 2.4.3 packets, 2.4.4
 * PAT/PMT, 2.4.3.6 PES). Fed the track's bytes in order, in chunks of any size; no I/O.
 *
 * What it does not carry it reports instead of guessing (`unsupported`): other codecs (HEVC, AC-3,
 * MP3, ...), more than one video or audio stream, a program map that changes midway. The caller
 * then leaves the stream to ffmpeg.
 *
 * Damage in transport is found, not glued into frames silently (2.4.3.3): a gap in a stream's
 * continuity_counter (lost packets), a packet with transport_error_indicator set, and a PES shorter
 * than its PES_packet_length mark the PES `corrupt`; the tracks drop what comes from it, as
 * `ffmpeg -fflags +discardcorrupt` does. A duplicate packet (same counter, right after the original)
 * is dropped, as 2.4.3.3 allows a packet to be sent twice. Counters are checked within a segment:
 * `boundary()` forgets them, since HLS packagers may start each segment's counters afresh.
 */

import { continuity, DAMAGED, DUPLICATE, LOST, OK, type TransportDamage } from './ts-continuity.js';
import { type DemuxHandlers, type Pes, parsePes } from './ts-pes-parser.js';
import { chooseStreams, patProgramMapPid, readPmt } from './ts-psi-parser.js';

const PACKET = 188;
const SYNC = 0x47;
const NOTHING = Buffer.alloc(0);

/**
 * One stream's PES being collected. The payloads of its packets are copied into one reused buffer:
 * a view and an array entry per 188-byte packet would cost more (allocation, GC) than the copy.
 */
interface PesState {
  buffer: Buffer;
  size: number;
  /** Bytes the PES has in all when its header gives a length, else 0 (video PES are often unbounded). */
  total: number;
  open: boolean;
  corrupt: boolean;
}

/** Where the payload of the packet at `p` starts, or -1 when it has none (2.4.3.2, 2.4.3.4). */
function payloadStart(b: Buffer, p: number): number {
  const afc = (b[p + 3]! >> 4) & 0x03;
  if ((afc & 1) === 0) return -1;
  const at = afc === 3 ? p + 5 + b[p + 4]! : p + 4;
  return at < p + PACKET ? at : -1;
}

export class TsDemuxer {
  /** Why the stream cannot be remuxed here, once that is known; the demuxer stops then. */
  unsupported: string | null = null;
  /** PIDs of the streams found in the PMT (-1: none). */
  videoPid = -1;
  audioPid = -1;
  private pmtPid = -1;
  private pmtSeen = '';
  private carry: Buffer | null = null;
  private readonly pes = new Map<number, PesState>();
  /** The last continuity_counter of each PID's packets with a payload (-1: none yet). */
  private readonly cc = new Int8Array(8192).fill(-1);
  readonly damage: TransportDamage = { lost: 0, errors: 0, duplicates: 0, short: 0 };
  /** The chunk being demuxed, as a plain Uint8Array (its subarrays are cheaper than a Buffer's). */
  private bytes: Uint8Array = new Uint8Array(0);
  /**
   * The last packet of the chunk before (zeros: none), which a duplicate at the start of this chunk
   * repeats: one copy per chunk, so that where the network cut the bytes changes nothing.
   */
  private readonly prev = Buffer.alloc(PACKET);

  constructor(
    private readonly on: DemuxHandlers,
    private readonly want: { video: boolean; audio: boolean } = { video: true, audio: true },
  ) {}

  /** True once the program map has been read. */
  get ready(): boolean {
    return this.pmtSeen !== '';
  }

  push(chunk: Buffer): void {
    if (this.unsupported) return;
    const b = chunk;
    this.bytes = new Uint8Array(b.buffer, b.byteOffset, b.length);
    let p = 0;
    if (this.carry) {
      const need = PACKET - this.carry.length;
      if (b.length < need) {
        this.carry = Buffer.concat([this.carry, b]);
        return;
      }
      const packet = Buffer.concat([this.carry, b.subarray(0, need)]);
      this.carry = null;
      this.bytes = new Uint8Array(packet.buffer, packet.byteOffset, packet.length);
      if (packet[0] === SYNC) this.packet(packet, 0);
      packet.copy(this.prev);
      this.bytes = new Uint8Array(b.buffer, b.byteOffset, b.length);
      p = need;
    }
    const n = b.length;
    /** Where the last whole packet of this chunk is, once one has been read. */
    let last = -1;
    while (p < n) {
      if (b[p] !== SYNC) {
        // Lost sync (a damaged or padded segment): skip to the next sync byte, as ffmpeg does.
        const next = b.indexOf(SYNC, p + 1);
        if (next < 0) break;
        p = next;
        continue;
      }
      if (p + PACKET > n) {
        this.carry = Buffer.from(b.subarray(p));
        break;
      }
      const pid = ((b[p + 1]! & 0x1f) << 8) | b[p + 2]!;
      if (pid === this.videoPid || pid === this.audioPid) {
        // This packet and those right after it that continue the same PES (same PID, no unit start):
        // a video frame is dozens of packets in a row, copied in one go.
        let q = p + PACKET;
        while (
          q + PACKET <= n &&
          b[q] === SYNC &&
          (b[q + 1]! & 0x5f) === pid >> 8 &&
          b[q + 2] === (pid & 0xff)
        ) {
          q += PACKET;
        }
        this.run(pid, b, p, q);
        last = q - PACKET;
        p = q;
        continue;
      }
      this.packet(b, p);
      last = p;
      if (this.unsupported) return;
      p += PACKET;
    }
    if (last >= 0) b.copy(this.prev, 0, last, last + PACKET);
  }

  /**
   * A segment boundary: continuity counters start afresh after it (packagers may restart them in
   * every segment, which is no loss).
   */
  boundary(): void {
    this.cc.fill(-1);
  }

  /** The end of the stream: PES packets without a length end here. */
  end(): void {
    for (const pid of this.pes.keys()) this.finish(pid);
  }

  /** One packet that is not part of a run: PAT, PMT, or a single one of a stream. */
  private packet(b: Buffer, p: number): void {
    const pid = ((b[p + 1]! & 0x1f) << 8) | b[p + 2]!;
    if (pid === this.videoPid || pid === this.audioPid) {
      this.run(pid, b, p, p + PACKET);
      return;
    }
    if ((b[p + 1]! & 0x40) === 0) return; // PSI: only sections that start in this packet are read
    const at = payloadStart(b, p);
    if (at < 0) return;
    if (pid === 0) {
      if (this.pmtPid < 0) this.pmtPid = patProgramMapPid(b, at + 1 + b[at]!, p + PACKET);
    } else if (pid === this.pmtPid) this.pmt(b, at + 1 + b[at]!, p + PACKET);
  }

  /**
   * Packets [p, q) of one stream, all but the first continuing the PES: copied into the PES buffer
   * with one copy, then their headers squeezed out in place (copyWithin allocates nothing, where a
   * view per packet would).
   */
  private run(pid: number, b: Buffer, p: number, q: number): void {
    let st = this.pes.get(pid);
    let first = continuity(this.cc, this.prev, this.damage, pid, b, p);
    while (first === DUPLICATE) {
      p += PACKET;
      if (p >= q) return;
      first = continuity(this.cc, this.prev, this.damage, pid, b, p);
    }
    const unitStart = (b[p + 1]! & 0x40) !== 0;
    if (unitStart) {
      // Packets lost right before a unit start were the open PES's tail, not this one's.
      if (first === LOST) {
        if (st?.open) st.corrupt = true;
        else if (st) this.lost(pid);
        first = OK;
      }
      if (st?.open) this.finish(pid);
      if (!st) {
        st = {
          buffer: Buffer.allocUnsafeSlow(pid === this.videoPid ? 512 * 1024 : 16 * 1024),
          size: 0,
          total: 0,
          open: false,
          corrupt: false,
        };
        this.pes.set(pid, st);
      }
      st.open = true;
      st.size = 0;
      st.total = 0;
      st.corrupt = false;
      const at = payloadStart(b, p);
      if (at >= 0 && p + PACKET - at >= 6 && b[at] === 0 && b[at + 1] === 0 && b[at + 2] === 1) {
        const length = (b[at + 4]! << 8) | b[at + 5]!;
        st.total = length > 0 ? length + 6 : 0;
      }
    } else if (!st?.open) {
      // The tail of a PES that started before our first byte, or whose start was lost.
      this.strays(pid, b, p + PACKET, q, first === LOST || first === DAMAGED);
      return;
    }
    if (first !== OK) st.corrupt = true;
    const base = st.size;
    if (base + (q - p) > st.buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(st.buffer.length * 2, base + (q - p)));
      st.buffer.copy(grown, 0, 0, base);
      st.buffer = grown;
    }
    const out = st.buffer;
    out.set(this.bytes.subarray(p, q), base);
    let w = base;
    for (let k = p; k < q; k += PACKET) {
      if (k > p) {
        if (st.total > 0 && w >= st.total) {
          // The PES is complete: packets after it without a unit start belong to one whose start
          // was lost. Where a run ends (a chunk's end) must not change what is made of them.
          st.size = w;
          this.finish(pid);
          this.strays(pid, b, k, q, false);
          return;
        }
        const check = continuity(this.cc, this.prev, this.damage, pid, b, k);
        if (check === DUPLICATE) continue;
        if (check !== OK) st.corrupt = true;
      }
      const at = payloadStart(b, k);
      if (at < 0) continue;
      const src = base + (at - p);
      const len = k + PACKET - at;
      if (src !== w) out.copyWithin(w, src, src + len);
      w += len;
    }
    st.size = w;
    if (st.total > 0 && st.size >= st.total) this.finish(pid);
  }

  /**
   * Packets [k, q) of a stream whose PES start is not here: skipped, their counters followed. Packets
   * lost among them (or before them, `lost`) are reported: the frame they belonged to is damaged.
   */
  private strays(pid: number, b: Buffer, k: number, q: number, lost: boolean): void {
    for (let i = k; i < q; i += PACKET) {
      const check = continuity(this.cc, this.prev, this.damage, pid, b, i);
      if (check === LOST || check === DAMAGED) lost = true;
    }
    if (lost) this.lost(pid);
  }

  /** Packets of the stream were lost between two PES: its handler hears so from an empty damaged PES. */
  private lost(pid: number): void {
    const pes: Pes = { data: NOTHING, pts: null, dts: null, corrupt: true };
    if (pid === this.videoPid) this.on.video?.(pes);
    else this.on.audio?.(pes);
  }

  private pmt(b: Buffer, s: number, end: number): void {
    const map = readPmt(b, s, end);
    if (map === null) return;
    if (typeof map === 'string') {
      this.unsupported = map;
      return;
    }
    if (this.pmtSeen) {
      if (map.key !== this.pmtSeen) this.unsupported = 'the program map changes within the stream';
      return;
    }
    this.pmtSeen = map.key || 'empty';
    const chosen = chooseStreams(map.streams, this.want);
    if (chosen.unsupported) this.unsupported = chosen.unsupported;
    this.videoPid = chosen.videoPid;
    this.audioPid = chosen.audioPid;
  }

  private finish(pid: number): void {
    const st = this.pes.get(pid);
    if (!st?.open) return;
    st.open = false;
    const pes = parsePes(st.buffer.subarray(0, st.total > 0 ? Math.min(st.total, st.size) : st.size));
    if (!pes) return;
    if (st.total > 0 && st.size < st.total) {
      this.damage.short++;
      pes.corrupt = true;
    } else if (st.corrupt) {
      pes.corrupt = true;
    }
    if (pid === this.videoPid) this.on.video?.(pes);
    else this.on.audio?.(pes);
  }
}
