/**
 * Deterministic MPEG-TS mutation for fuzzing the demuxer and the in-process remux (test/e2e/ts-fuzz.test.ts).
 *
 * Every case is a pure function of (seed, index, sources), as in the playlist fuzzer's mutate.ts: one
 * failing case is regenerated and replayed on its own. A case is a mutated stream, the writes and
 * chunks it is fed in, the remux options, and what the result must be:
 *
 * - `same-bytes`: only the chunk sizes changed, or exact duplicate packets were added (a packet sent
 *   twice, ISO/IEC 13818-1 2.4.3.3): the file must be byte for byte the clean stream's;
 * - `same-samples`: the same changes, fed in several writes (each write one fetch, whose chunks the
 *   MP4 keeps): the clean stream's samples, in another chunk layout;
 * - `any`: damage of every kind: a valid file, or a refusal (NativeDeclined, GabeError); fed in one
 *   write, the file must not depend on the chunk sizes (test/e2e/ts-fuzz.test.ts checks it).
 * Separate audio renditions and audio-only merges are drawn for `any` cases.
 */
import { int, mulberry32, pickOf, type Rng } from './mutate.js';

const PACKET = 188;
const SYNC = 0x47;

export interface TsSource {
  readonly name: string;
  readonly data: Uint8Array;
  /** Audio alone: also fed, mutated, as a separate audio rendition beside another source. */
  readonly rendition?: boolean;
}

export type Expect = 'same-bytes' | 'same-samples' | 'any';

export interface TsCase {
  readonly index: number;
  readonly source: string;
  readonly ops: readonly string[];
  readonly data: Buffer;
  /** The stream as fed: one array of chunks per `write` call. */
  readonly writes: Buffer[][];
  readonly expect: Expect;
  readonly audioOnly: boolean;
  /** A separate audio rendition's writes (the main stream's own audio is then left out), or null. */
  readonly audioWrites: Buffer[][] | null;
  readonly moovReserve: number | null;
}

/** The moov space the clean reference files are made with (and the cases that must equal them). */
export const REFERENCE_RESERVE = 64 * 1024;

/** Offsets of the packets found in `b` (sync byte and 188 bytes after it), resyncing after damage. */
export function packetStarts(b: Buffer): number[] {
  const out: number[] = [];
  for (let p = b.indexOf(SYNC); p >= 0 && p + PACKET <= b.length; ) {
    if (b[p] === SYNC) {
      out.push(p);
      p += PACKET;
    } else {
      p = b.indexOf(SYNC, p + 1);
    }
  }
  return out;
}

const pid = (b: Buffer, p: number) => ((b[p + 1]! & 0x1f) << 8) | b[p + 2]!;

/** Where a packet's payload starts, or -1 (no payload, or an adaptation field that fills it). */
function payloadAt(b: Buffer, p: number): number {
  const afc = (b[p + 3]! >> 4) & 3;
  if ((afc & 1) === 0) return -1;
  const at = afc === 3 ? p + 5 + b[p + 4]! : p + 4;
  return at < p + PACKET ? at : -1;
}

/** Packets that start a PES (unit start, payload beginning with 00 00 01), as [packet, payload]. */
function pesStarts(b: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (const p of packetStarts(b)) {
    if ((b[p + 1]! & 0x40) === 0 || pid(b, p) === 0) continue;
    const at = payloadAt(b, p);
    if (at >= 0 && at + 19 <= p + PACKET && b[at] === 0 && b[at + 1] === 0 && b[at + 2] === 1) {
      out.push([p, at]);
    }
  }
  return out;
}

/** Every offset where `needle` occurs (at most `limit`). */
function occurrences(b: Buffer, needle: Buffer | number, limit = 5000): number[] {
  const out: number[] = [];
  for (let at = b.indexOf(needle); at >= 0 && out.length < limit; at = b.indexOf(needle, at + 1))
    out.push(at);
  return out;
}

function flipBit(b: Buffer, at: number, rng: Rng): void {
  if (at >= 0 && at < b.length) b[at]! ^= 1 << int(rng, 8);
}

type Mutation = (b: Buffer, rng: Rng) => { data: Buffer; op: string };

/** A packet offset chosen at random, or -1 when there is none. */
function somePacket(b: Buffer, rng: Rng): number {
  const ps = packetStarts(b);
  return ps.length === 0 ? -1 : pickOf(rng, ps);
}

function copy(b: Buffer): Buffer {
  return Buffer.from(b);
}

/** Damage of every kind; each returns a new buffer (the input is the clean source or a previous step's). */
const MUTATIONS: Record<string, Mutation> = {
  cut(b, rng) {
    const at = int(rng, b.length + 1);
    return { data: b.subarray(0, at), op: `cut@${at}` };
  },
  cutHead(b, rng) {
    const at = int(rng, Math.max(1, b.length >> 1));
    return { data: b.subarray(at), op: `cutHead@${at}` };
  },
  flipBits(b, rng) {
    const d = copy(b);
    const n = 1 + int(rng, 8);
    for (let i = 0; i < n; i++) flipBit(d, int(rng, d.length), rng);
    return { data: d, op: `flipBits×${n}` };
  },
  flipTsHeader(b, rng) {
    const d = copy(b);
    const p = somePacket(d, rng);
    const at = p + 1 + int(rng, 3);
    if (p >= 0) flipBit(d, at, rng);
    return { data: d, op: `flipTsHeader@${at}` };
  },
  flipAdaptationLength(b, rng) {
    const d = copy(b);
    const withAf = packetStarts(d).filter((p) => (d[p + 3]! & 0x20) !== 0);
    if (withAf.length === 0) return { data: d, op: 'flipAdaptationLength(none)' };
    const p = pickOf(rng, withAf);
    if (rng() < 0.5) flipBit(d, p + 4, rng);
    else d[p + 4] = int(rng, 256);
    return { data: d, op: `flipAdaptationLength@${p}=${d[p + 4]}` };
  },
  flipPesHeader(b, rng) {
    const d = copy(b);
    const starts = pesStarts(d);
    if (starts.length === 0) return { data: d, op: 'flipPesHeader(none)' };
    const [, at] = pickOf(rng, starts);
    // stream_id, PES_packet_length, flags, PES_header_data_length
    const k = at + 3 + int(rng, 6);
    flipBit(d, k, rng);
    return { data: d, op: `flipPesHeader@${k}` };
  },
  flipPts(b, rng) {
    const d = copy(b);
    const starts = pesStarts(d);
    if (starts.length === 0) return { data: d, op: 'flipPts(none)' };
    const [, at] = pickOf(rng, starts);
    const k = at + 9 + int(rng, 10); // PTS, then DTS when there is one
    flipBit(d, k, rng);
    return { data: d, op: `flipPts@${k}` };
  },
  flipAdts(b, rng) {
    const d = copy(b);
    const syncs = occurrences(d, 0xff).filter((at) => (d[at + 1]! & 0xf6) === 0xf0);
    if (syncs.length === 0) return { data: d, op: 'flipAdts(none)' };
    const k = pickOf(rng, syncs) + 1 + int(rng, 6);
    flipBit(d, k, rng);
    return { data: d, op: `flipAdts@${k}` };
  },
  flipNal(b, rng) {
    const d = copy(b);
    const sps = rng() < 0.5;
    const found = occurrences(d, Buffer.from(sps ? [0, 0, 1, 0x67] : [0, 0, 1]));
    if (found.length === 0) return { data: d, op: 'flipNal(none)' };
    // The NAL header, or a byte of what follows (an SPS's fields, a slice's first_mb_in_slice).
    const k = pickOf(rng, found) + 3 + (rng() < 0.4 ? 0 : 1 + int(rng, sps ? 12 : 4));
    flipBit(d, k, rng);
    return { data: d, op: `flip${sps ? 'Sps' : 'Nal'}@${k}` };
  },
  setBytes(b, rng) {
    const d = copy(b);
    const n = 1 + int(rng, 4);
    const at: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = int(rng, d.length);
      d[k] = pickOf(rng, [0x00, 0xff, SYNC, 0x01]);
      at.push(k);
    }
    return { data: d, op: `setBytes@${at.join('/')}` };
  },
  truncatePacket(b, rng) {
    const p = somePacket(b, rng);
    if (p < 0) return { data: b, op: 'truncatePacket(none)' };
    const n = 1 + int(rng, PACKET - 1);
    const from = p + int(rng, PACKET - n + 1);
    return {
      data: Buffer.concat([b.subarray(0, from), b.subarray(from + n)]),
      op: `truncatePacket@${from}-${n}`,
    };
  },
  dropPackets(b, rng) {
    const ps = packetStarts(b);
    if (ps.length === 0) return { data: b, op: 'dropPackets(none)' };
    const i = int(rng, ps.length);
    const n = 1 + int(rng, 3);
    const from = ps[i]!;
    const to = Math.min(b.length, from + n * PACKET);
    return { data: Buffer.concat([b.subarray(0, from), b.subarray(to)]), op: `dropPackets@${from}×${n}` };
  },
  dropScattered(b, rng) {
    const ps = packetStarts(b);
    const n = 1 + int(rng, 6);
    const drop = new Set(Array.from({ length: n }, () => ps[int(rng, ps.length)]!));
    const parts: Buffer[] = [];
    let last = 0;
    for (const p of [...drop].sort((x, y) => x - y)) {
      parts.push(b.subarray(last, p));
      last = p + PACKET;
    }
    parts.push(b.subarray(Math.min(last, b.length)));
    return { data: Buffer.concat(parts), op: `dropScattered×${drop.size}` };
  },
  duplicate: duplicateMutation,
  repeatRun(b, rng) {
    const ps = packetStarts(b);
    if (ps.length < 2) return { data: b, op: 'repeatRun(none)' };
    const i = int(rng, ps.length - 1);
    const n = Math.min(2 + int(rng, 29), ps.length - i);
    const from = ps[i]!;
    const to = from + n * PACKET;
    return {
      data: Buffer.concat([b.subarray(0, to), b.subarray(from, to), b.subarray(to)]),
      op: `repeatRun@${from}×${n}`,
    };
  },
  replayEarlier(b, rng) {
    // A run from earlier in the stream sent again later: timestamps running backwards.
    const ps = packetStarts(b);
    if (ps.length < 4) return { data: b, op: 'replayEarlier(none)' };
    const i = int(rng, ps.length >> 1);
    const n = 1 + int(rng, 40);
    const from = ps[i]!;
    const to = Math.min(b.length, from + n * PACKET);
    const into = ps[i + int(rng, ps.length - i)]!;
    return {
      data: Buffer.concat([b.subarray(0, into), b.subarray(from, to), b.subarray(into)]),
      op: `replayEarlier@${from}×${n}→${into}`,
    };
  },
  reorder(b, rng) {
    const ps = packetStarts(b);
    if (ps.length < 4) return { data: b, op: 'reorder(none)' };
    const n = 1 + int(rng, 10);
    const i = int(rng, Math.max(1, ps.length - 2 * n));
    const a = ps[i]!;
    const mid = Math.min(b.length, a + n * PACKET);
    const end = Math.min(b.length, mid + n * PACKET);
    return {
      data: Buffer.concat([b.subarray(0, a), b.subarray(mid, end), b.subarray(a, mid), b.subarray(end)]),
      op: `reorder@${a}×${n}`,
    };
  },
  garbage(b, rng) {
    const n = 1 + int(rng, 600);
    const junk = Buffer.alloc(n);
    for (let i = 0; i < n; i++) junk[i] = rng() < 0.05 ? SYNC : int(rng, 256);
    const ps = packetStarts(b);
    const at = rng() < 0.5 && ps.length > 0 ? pickOf(rng, ps) : int(rng, b.length + 1);
    return { data: Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]), op: `garbage@${at}+${n}` };
  },
  zeroRun(b, rng) {
    const d = copy(b);
    const at = int(rng, d.length);
    const n = 1 + int(rng, 2000);
    d.fill(0, at, Math.min(d.length, at + n));
    return { data: d, op: `zeroRun@${at}+${n}` };
  },
};

/** Exact copies of 1..4 packets, each right after itself (2.4.3.3): no loss, nothing to change. */
function duplicateMutation(b: Buffer, rng: Rng): { data: Buffer; op: string } {
  const ps = packetStarts(b);
  if (ps.length === 0) return { data: b, op: 'duplicate(none)' };
  const n = 1 + int(rng, 4);
  const at = [...new Set(Array.from({ length: n }, () => ps[int(rng, ps.length)]!))].sort((x, y) => x - y);
  const parts: Buffer[] = [];
  let last = 0;
  for (const p of at) {
    parts.push(b.subarray(last, p + PACKET), b.subarray(p, p + PACKET));
    last = p + PACKET;
  }
  parts.push(b.subarray(last));
  return { data: Buffer.concat(parts), op: `duplicate@${at.join('/')}` };
}

const MUTATION_NAMES = Object.keys(MUTATIONS);

/** `data` cut into chunks of sizes the case's rng picks (1 byte .. the whole). */
function chunked(data: Buffer, rng: Rng): { chunks: Buffer[]; how: string } {
  const mode = rng();
  let size: () => number;
  let how: string;
  if (mode < 0.2) {
    return { chunks: data.length > 0 ? [data] : [], how: 'whole' };
  } else if (mode < 0.23 && data.length <= 400_000) {
    size = () => 1;
    how = 'bytes';
  } else if (mode < 0.5) {
    const fixed = pickOf(rng, [7, 187, 188, 189, 376, 1000, 1316, 4096, 65536]);
    size = () => fixed;
    how = `fixed ${fixed}`;
  } else if (mode < 0.75) {
    size = () => 1 + int(rng, 2000);
    how = 'random ≤2000';
  } else {
    size = () => 1 + int(rng, 70_000);
    how = 'random ≤70000';
  }
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    const n = size();
    chunks.push(data.subarray(at, at + n));
    at += n;
  }
  return { chunks, how };
}

/** `data` split into `n` writes at random offsets, each cut into chunks. */
function writesOf(data: Buffer, n: number, rng: Rng): { writes: Buffer[][]; how: string } {
  const cuts = Array.from({ length: n - 1 }, () => int(rng, data.length + 1)).sort((a, b) => a - b);
  const bounds = [0, ...cuts, data.length];
  const writes: Buffer[][] = [];
  const hows: string[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const c = chunked(data.subarray(bounds[i], bounds[i + 1]), rng);
    writes.push(c.chunks);
    hows.push(c.how);
  }
  const at = cuts.length > 0 ? ` at ${cuts.join('/')}` : '';
  return { writes, how: `${n} write${n > 1 ? 's' : ''}${at} (${hows.join('; ')})` };
}

export function makeTsCase(sources: readonly TsSource[], seed: number, index: number): TsCase {
  const rng = mulberry32((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const src = pickOf(rng, sources);
  let data = Buffer.from(src.data.buffer, src.data.byteOffset, src.data.length);
  const ops: string[] = [];
  const kind = rng();
  let expect: Expect;
  let writeCount: number;
  if (kind < 0.08) {
    expect = 'same-bytes';
    writeCount = 1;
  } else if (kind < 0.14) {
    expect = 'same-samples';
    writeCount = 2 + int(rng, 4);
  } else if (kind < 0.22) {
    // Duplicates in one write give the clean file; split into writes, its samples.
    writeCount = rng() < 0.6 ? 1 : 2 + int(rng, 4);
    expect = writeCount === 1 ? 'same-bytes' : 'same-samples';
    const m = duplicateMutation(data, rng);
    data = m.data;
    ops.push(m.op);
  } else {
    expect = 'any';
    writeCount = rng() < 0.6 ? 1 : 2 + int(rng, 4);
    for (let n = 1 + int(rng, 4); n > 0; n--) {
      const m = MUTATIONS[pickOf(rng, MUTATION_NAMES)]!(data, rng);
      data = m.data;
      ops.push(m.op);
    }
  }
  const { writes, how } = writesOf(data, writeCount, rng);
  ops.push(how);
  const mode = expect === 'any' ? rng() : 1;
  const audioOnly = mode < 0.12;
  let audioWrites: Buffer[][] | null = null;
  const rendition = sources.find((s) => s.rendition);
  if (mode >= 0.12 && mode < 0.24 && rendition) {
    let audio = Buffer.from(rendition.data.buffer, rendition.data.byteOffset, rendition.data.length);
    const m = MUTATIONS[pickOf(rng, MUTATION_NAMES)]!(audio, rng);
    audio = m.data;
    const w = writesOf(audio, 1 + int(rng, 3), rng);
    audioWrites = w.writes;
    ops.push(`audio rendition ${rendition.name} + ${m.op}, ${w.how}`);
  }
  const moovReserve =
    expect === 'any' ? pickOf(rng, [REFERENCE_RESERVE, null, 100, 4096]) : REFERENCE_RESERVE;
  return { index, source: src.name, ops, data, writes, expect, audioOnly, audioWrites, moovReserve };
}
