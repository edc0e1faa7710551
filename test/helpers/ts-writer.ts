/**
 * A small MPEG-TS reader and writer for test fixtures (ISO/IEC 13818-1), independent of Gabe's demuxer:
 * it takes the elementary streams out of an ffmpeg-made TS and packs them again with the PES layouts,
 * timestamps and packet faults that real muxers and networks produce and ffmpeg's own muxer never does
 * (access units spread over several PES, ADTS headers cut by a PES boundary, wrapped clocks, lost or
 * duplicated packets, transport errors).
 */

const PACKET = 188;

export interface EsUnit {
  /** The PES payload. */
  data: Buffer;
  pts: number | null;
  dts: number | null;
}

export interface EsStream {
  pid: number;
  type: number;
  /** PES stream_id (0xe0 video, 0xc0 audio). */
  streamId: number;
  units: EsUnit[];
}

function readTs(b: Buffer, at: number): number {
  return (
    ((b[at]! >> 1) & 0x07) * 2 ** 30 +
    ((b[at + 1]! << 7) | (b[at + 2]! >> 1)) * 2 ** 15 +
    ((b[at + 3]! << 7) | (b[at + 4]! >> 1))
  );
}

/** The elementary streams of a TS's first program, PES by PES, in file order. */
export function readEs(ts: Buffer): EsStream[] {
  let pmtPid = -1;
  const streams = new Map<number, EsStream>();
  const open = new Map<number, Buffer[]>();
  const close = (pid: number) => {
    const parts = open.get(pid);
    open.delete(pid);
    if (!parts) return;
    const raw = Buffer.concat(parts);
    if (raw.length < 9 || raw[0] !== 0 || raw[1] !== 0 || raw[2] !== 1) return;
    const flags = raw[7]!;
    const pts = flags & 0x80 ? readTs(raw, 9) : null;
    const dts = (flags & 0xc0) === 0xc0 ? readTs(raw, 14) : pts;
    const declared = raw.readUInt16BE(4);
    const end = declared > 0 ? Math.min(raw.length, 6 + declared) : raw.length;
    streams.get(pid)!.units.push({ data: raw.subarray(9 + raw[8]!, end), pts, dts });
  };
  for (let p = 0; p + PACKET <= ts.length; p += PACKET) {
    if (ts[p] !== 0x47) throw new Error(`no sync byte at ${p}`);
    const pusi = (ts[p + 1]! & 0x40) !== 0;
    const pid = ((ts[p + 1]! & 0x1f) << 8) | ts[p + 2]!;
    const afc = (ts[p + 3]! >> 4) & 3;
    if ((afc & 1) === 0) continue;
    const at = afc === 3 ? p + 5 + ts[p + 4]! : p + 4;
    if (at >= p + PACKET) continue;
    if (pid === 0 && pusi) {
      const s = at + 1 + ts[at]!;
      pmtPid = ((ts[s + 10]! & 0x1f) << 8) | ts[s + 11]!;
    } else if (pid === pmtPid && pusi && streams.size === 0) {
      const s = at + 1 + ts[at]!;
      const sectionEnd = s + 3 + (((ts[s + 1]! & 0x0f) << 8) | ts[s + 2]!) - 4;
      const infoLength = ((ts[s + 10]! & 0x0f) << 8) | ts[s + 11]!;
      for (let i = s + 12 + infoLength; i + 5 <= sectionEnd; ) {
        const esPid = ((ts[i + 1]! & 0x1f) << 8) | ts[i + 2]!;
        streams.set(esPid, { pid: esPid, type: ts[i]!, streamId: 0, units: [] });
        i += 5 + (((ts[i + 3]! & 0x0f) << 8) | ts[i + 4]!);
      }
    } else if (streams.has(pid)) {
      if (pusi) {
        close(pid);
        open.set(pid, []);
        streams.get(pid)!.streamId ||= ts[at + 3]!;
      }
      open.get(pid)?.push(ts.subarray(at, p + PACKET));
    }
  }
  for (const pid of [...open.keys()]) close(pid);
  return [...streams.values()];
}

/** One PES to write: its payload, timestamps (null: none), and whether its header states its length. */
export interface PesOut {
  data: Buffer;
  pts: number | null;
  dts?: number | null;
  /** PES_packet_length set (muxers that always set it must keep a PES under 64 KB); default false for video. */
  bounded?: boolean;
}

export interface StreamOut {
  pid: number;
  type: number;
  streamId: number;
  pes: PesOut[];
}

function putTimestamp(out: Buffer, at: number, prefix: number, ts: number): void {
  const v = ((ts % 2 ** 33) + 2 ** 33) % 2 ** 33;
  const hi = Math.floor(v / 2 ** 30);
  const mid = Math.floor(v / 2 ** 15) & 0x7fff;
  const lo = v & 0x7fff;
  out[at] = (prefix << 4) | (hi << 1) | 1;
  out[at + 1] = mid >> 7;
  out[at + 2] = ((mid & 0x7f) << 1) | 1;
  out[at + 3] = lo >> 7;
  out[at + 4] = ((lo & 0x7f) << 1) | 1;
}

function pesBytes(s: StreamOut, p: PesOut): Buffer {
  const dts = p.dts === undefined ? p.pts : p.dts;
  const both = p.pts !== null && dts !== null && dts !== p.pts;
  const headerData = p.pts === null ? 0 : both ? 10 : 5;
  const head = Buffer.alloc(9 + headerData);
  head[2] = 1;
  head[3] = s.streamId;
  const length = 3 + headerData + p.data.length;
  const bounded = p.bounded ?? s.streamId < 0xe0;
  if (bounded && length > 0xffff) throw new Error(`a bounded PES of ${length} bytes`);
  head.writeUInt16BE(bounded ? length : 0, 4);
  head[6] = 0x80;
  head[7] = p.pts === null ? 0 : both ? 0xc0 : 0x80;
  head[8] = headerData;
  if (p.pts !== null) putTimestamp(head, 9, both ? 3 : 2, p.pts);
  if (both) putTimestamp(head, 14, 1, dts!);
  return Buffer.concat([head, p.data]);
}

function crc32(b: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of b) {
    crc ^= byte << 24;
    for (let k = 0; k < 8; k++) crc = crc & 0x80000000 ? ((crc << 1) ^ 0x04c11db7) >>> 0 : (crc << 1) >>> 0;
  }
  return crc >>> 0;
}

function section(body: Buffer): Buffer {
  const withCrc = Buffer.alloc(body.length + 4);
  body.copy(withCrc);
  withCrc.writeUInt32BE(crc32(body), body.length);
  return withCrc;
}

function psiPacket(pid: number, sec: Buffer, cc: number): Buffer {
  const pkt = Buffer.alloc(PACKET, 0xff);
  pkt[0] = 0x47;
  pkt[1] = 0x40 | (pid >> 8);
  pkt[2] = pid & 0xff;
  pkt[3] = 0x10 | (cc & 0x0f);
  pkt[4] = 0; // pointer field
  sec.copy(pkt, 5);
  return pkt;
}

const PMT_PID = 0x1000;

function patPmt(streams: readonly StreamOut[], cc: number): Buffer[] {
  const pat = Buffer.from([0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xe0 | (PMT_PID >> 8), PMT_PID & 0xff]);
  const entries = streams.map((s) => Buffer.from([s.type, 0xe0 | (s.pid >> 8), s.pid & 0xff, 0xf0, 0]));
  const body = Buffer.concat([
    Buffer.from([
      0x02,
      0,
      0,
      0,
      1,
      0xc1,
      0,
      0,
      0xe0 | (streams[0]!.pid >> 8),
      streams[0]!.pid & 0xff,
      0xf0,
      0,
    ]),
    ...entries,
  ]);
  body.writeUInt16BE(0xb000 | (body.length - 3 + 4), 1);
  return [psiPacket(0, section(pat), cc), psiPacket(PMT_PID, section(body), cc)];
}

/** TS packets carrying one PES; `cc` is the stream's counter, advanced per packet. */
function pesPackets(s: StreamOut, pes: Buffer, cc: { n: number }): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, first = true; at < pes.length; first = false) {
    const pkt = Buffer.alloc(PACKET);
    pkt[0] = 0x47;
    pkt[1] = (first ? 0x40 : 0) | (s.pid >> 8);
    pkt[2] = s.pid & 0xff;
    const left = pes.length - at;
    if (left >= PACKET - 4) {
      pkt[3] = 0x10 | (cc.n & 0x0f);
      pes.copy(pkt, 4, at, at + PACKET - 4);
      at += PACKET - 4;
    } else {
      // The last packet is filled up with adaptation field stuffing (2.4.3.4).
      pkt[3] = 0x30 | (cc.n & 0x0f);
      const afLength = PACKET - 4 - 1 - left;
      pkt[4] = afLength;
      if (afLength > 0) {
        pkt[5] = 0;
        pkt.fill(0xff, 6, 5 + afLength);
      }
      pes.copy(pkt, 5 + afLength, at);
      at += left;
    }
    cc.n++;
    out.push(pkt);
  }
  return out;
}

export interface TsPacketOut {
  pid: number;
  packet: Buffer;
}

/**
 * A TS of the given streams: PAT and PMT first, then every stream's PES interleaved by DTS (a PES
 * without one goes right after the one before it of its stream), as packets that `mangle` may drop,
 * repeat or damage before they are joined.
 */
export function writeTs(
  streams: readonly StreamOut[],
  mangle?: (packets: TsPacketOut[]) => TsPacketOut[],
): Buffer {
  const items: { order: number; seq: number; s: StreamOut; pes: PesOut }[] = [];
  let seq = 0;
  for (const s of streams) {
    let last = -Infinity;
    for (const p of s.pes) {
      const t = p.dts ?? p.pts;
      if (t !== null && t !== undefined) last = t;
      items.push({ order: last, seq: seq++, s, pes: p });
    }
  }
  // Stable: ties and untimed continuations keep their stream's order.
  items.sort((a, b) => (a.order === b.order ? a.seq - b.seq : a.order - b.order));
  const counters = new Map(streams.map((s) => [s.pid, { n: 0 }]));
  let packets: TsPacketOut[] = patPmt(streams, 0).map((packet, i) => ({
    pid: i === 0 ? 0 : PMT_PID,
    packet,
  }));
  for (const it of items) {
    for (const packet of pesPackets(it.s, pesBytes(it.s, it.pes), counters.get(it.s.pid)!))
      packets.push({ pid: it.s.pid, packet });
  }
  if (mangle) packets = mangle(packets);
  return Buffer.concat(packets.map((p) => p.packet));
}

/** ADTS frames of an AAC elementary stream, as [offset, length] pairs. */
export function adtsFrames(es: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let at = 0; at + 7 <= es.length; ) {
    if (es[at] !== 0xff || (es[at + 1]! & 0xf6) !== 0xf0) throw new Error(`no ADTS sync at ${at}`);
    const length = ((es[at + 3]! & 3) << 11) | (es[at + 4]! << 3) | (es[at + 5]! >> 5);
    out.push([at, length]);
    at += length;
  }
  return out;
}

/** Byte offsets of the NAL units' start codes (00 00 01, or the 00 00 00 01 around it) in Annex B data. */
export function nalStarts(es: Buffer): number[] {
  const out: number[] = [];
  for (
    let at = es.indexOf(Buffer.from([0, 0, 1]));
    at >= 0;
    at = es.indexOf(Buffer.from([0, 0, 1]), at + 3)
  ) {
    out.push(at > 0 && es[at - 1] === 0 ? at - 1 : at);
  }
  return out;
}
