/**
 * Pure planning for a parallel ranged download: how the file is cut into pieces, which piece an idle
 * connection takes next, when a running piece is worth splitting, and the checkpoint that records
 * what is on disk. No I/O here; parallel-ranges.ts runs the plan against the network and the part file.
 */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Below this many bytes per connection a piece costs more in request latency and connection set-up
 * than it gains in bandwidth, so a file under 2 × this is fetched by one request (one connection).
 */
export const MIN_PIECE_BYTES = 1024 * 1024;
/** A split never leaves a half smaller than this, whatever the timing estimates say. */
export const MIN_SPLIT_BYTES = 256 * 1024;
/** A split must save at least this many request round trips of time to be made. */
const SPLIT_COST_FACTOR = 3;

/** Content-Range: bytes 100-199/1000 → { start: 100, end: 199, total: 1000 } (total null for "*"). */
export function parseContentRange(
  value: unknown,
): { start: number; end: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(value ?? '').trim());
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** What identifies one version of the resource: its size and validators (RFC 9110 8.8). */
export interface ResourceId {
  size: number;
  etag: string | null;
  lastModified: string | null;
}

export function resourceIdOf(size: number, headers: IncomingHttpHeaders): ResourceId {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v) ?? null;
  return { size, etag: one(headers['etag']), lastModified: one(headers['last-modified']) };
}

/**
 * Same version of the resource? Validators are compared only when both sides have them: a response
 * that omits one says nothing, while a different ETag or Last-Modified means the bytes changed.
 */
export function describeChange(a: ResourceId, b: ResourceId): string | null {
  if (a.size !== b.size) return `its size went from ${a.size} to ${b.size} bytes`;
  if (a.etag !== null && b.etag !== null && a.etag !== b.etag)
    return `its ETag went from ${a.etag} to ${b.etag}`;
  if (a.lastModified !== null && b.lastModified !== null && a.lastModified !== b.lastModified) {
    return `its Last-Modified went from ${a.lastModified} to ${b.lastModified}`;
  }
  return null;
}

/** Connections worth opening for `bytes`: one per MIN_PIECE_BYTES, between 1 and `max`. */
export function connectionsFor(bytes: number, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(bytes / MIN_PIECE_BYTES)));
}

/**
 * One byte range [start, end) of the file. `written` (absolute offset) is how far it is on disk;
 * `received` is how far its connection has read (≥ written: the rest waits in a chunk_size buffer).
 */
export interface PieceState {
  start: number;
  end: number;
  written: number;
  received: number;
  /** A connection is working on it. */
  owned: boolean;
  /** Bytes per second of its current transfer; 0 while it waits to retry; null before a measure. */
  rateBps: number | null;
}

export const missing = (p: PieceState): number => p.end - p.received;

/**
 * The time estimates a split decision needs, measured by the I/O side. `requestMs` is what one more
 * request costs before its first byte (latency, plus connecting when a socket is new).
 */
export interface Timing {
  requestMs: number;
  /** Per-connection throughput of the job so far, for pieces not measured yet; null at first. */
  meanRateBps: number | null;
}

/** Milliseconds until the piece is complete at its rate, or null when nothing is measured yet. */
function etaMs(p: PieceState, t: Timing): number | null {
  const rate = p.rateBps ?? t.meanRateBps;
  if (rate === null) return null;
  return rate <= 0 ? Number.POSITIVE_INFINITY : (missing(p) * 1000) / rate;
}

/**
 * Splitting halves the victim's remaining time T and costs the thief one request C, so the piece
 * ends at C + T/2 instead of T: worth it when T > 2C. A factor of 3 leaves room for the victim's
 * socket being closed (it asked for bytes it will not read) and for noise in the estimates. Without
 * a measured rate only large remainders are split.
 */
export function worthSplitting(p: PieceState, t: Timing): boolean {
  if (missing(p) < 2 * MIN_SPLIT_BYTES) return false;
  const eta = etaMs(p, t);
  if (eta === null) return missing(p) >= 2 * MIN_PIECE_BYTES;
  return eta > SPLIT_COST_FACTOR * t.requestMs;
}

/**
 * The pieces of one download and who works on what. Piece sizes: the file starts as one equal piece
 * per connection (few requests, so the 30 ms-per-request kind of latency is paid about once per
 * connection), and balance comes from work stealing rather than from many small pieces: a connection
 * that runs out of work takes the upper half of the piece that will take longest to finish, which
 * then stops where the thief starts. Connections of unequal speed, a piece waiting to retry, or a
 * stalled transfer therefore never leave the others idle for long, and the tail ends within about
 * one request's time of the fastest finish.
 */
export class RangePlan {
  private constructor(
    readonly size: number,
    /** Sorted by start; together they cover [0, size) exactly. */
    readonly pieces: PieceState[],
  ) {}

  /** `count` equal pieces, none started. */
  static fresh(size: number, count: number): RangePlan {
    const n = Math.max(1, Math.min(count, size));
    const pieces: PieceState[] = [];
    for (let i = 0; i < n; i++) {
      const start = Math.floor((i * size) / n);
      const end = Math.floor(((i + 1) * size) / n);
      pieces.push({ start, end, written: start, received: start, owned: false, rateBps: null });
    }
    return new RangePlan(size, pieces);
  }

  /**
   * A plan for some byte ranges of the file only (sorted, disjoint, [start, end)): the rest is
   * marked written, so no connection asks for it and a checkpoint records the ranges alone.
   */
  static sparse(size: number, ranges: readonly { start: number; end: number }[]): RangePlan {
    const pieces: PieceState[] = [];
    const piece = (start: number, end: number, done: boolean) =>
      pieces.push({
        start,
        end,
        written: done ? end : start,
        received: done ? end : start,
        owned: false,
        rateBps: null,
      });
    let at = 0;
    for (const r of ranges) {
      if (r.start > at) piece(at, r.start, true);
      if (r.end > r.start) piece(r.start, r.end, false);
      at = r.end;
    }
    if (at < size) piece(at, size, true);
    return new RangePlan(size, pieces);
  }

  static fromCheckpoint(cp: Checkpoint): RangePlan {
    return new RangePlan(
      cp.size,
      cp.pieces.map(([start, end, done]) => ({
        start,
        end,
        written: start + done,
        received: start + done,
        owned: false,
        rateBps: null,
      })),
    );
  }

  get writtenBytes(): number {
    let n = 0;
    for (const p of this.pieces) n += p.written - p.start;
    return n;
  }

  get missingBytes(): number {
    return this.size - this.writtenBytes;
  }

  /** The mean transfer rate of the running pieces that have one measured, or null. */
  get meanRateBps(): number | null {
    let sum = 0;
    let n = 0;
    for (const p of this.pieces) {
      if (p.owned && p.rateBps) {
        sum += p.rateBps;
        n++;
      }
    }
    return n > 0 ? sum / n : null;
  }

  /** The first piece that is neither complete nor owned: where a resumed download starts. */
  firstOpen(): PieceState | null {
    return this.pieces.find((p) => !p.owned && missing(p) > 0) ?? null;
  }

  /**
   * Work for an idle connection, marked owned: the first open piece, else the upper half of the
   * running piece with the longest estimated time left, if that is worth splitting; else null.
   */
  take(t: Timing): PieceState | null {
    const open = this.firstOpen();
    if (open) {
      open.owned = true;
      open.rateBps = null;
      return open;
    }
    let victim: PieceState | null = null;
    let victimEta = -1;
    for (const p of this.pieces) {
      if (!p.owned || !worthSplitting(p, t)) continue;
      // Unmeasured pieces rank by size through the mean rate, or last when there is none.
      const eta = etaMs(p, t) ?? missing(p) / 1e9;
      if (eta > victimEta) {
        victim = p;
        victimEta = eta;
      }
    }
    if (!victim) return null;
    const mid = victim.received + Math.floor(missing(victim) / 2);
    const piece: PieceState = {
      start: mid,
      end: victim.end,
      written: mid,
      received: mid,
      owned: true,
      rateBps: null,
    };
    victim.end = mid;
    this.pieces.splice(this.pieces.indexOf(victim) + 1, 0, piece);
    return piece;
  }

  release(p: PieceState): void {
    p.owned = false;
    p.rateBps = null;
  }
}

/**
 * The durable progress beside the part file (`download.part.json`): the resource's identity and, per
 * piece, [start, end, bytes on disk from start]. Only bytes already written are ever claimed.
 */
export interface Checkpoint extends ResourceId {
  version: 1;
  pieces: [number, number, number][];
}

export function checkpointOf(id: ResourceId, plan: RangePlan): Checkpoint {
  return {
    version: 1,
    size: id.size,
    etag: id.etag,
    lastModified: id.lastModified,
    pieces: plan.pieces.map((p) => [p.start, p.end, p.written - p.start]),
  };
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isText = (v: unknown) => v === null || typeof v === 'string';

/** A checkpoint from its JSON, or null when it is not one we wrote (any doubt means start over). */
export function parseCheckpoint(text: string): Checkpoint | null {
  let v: Partial<Checkpoint>;
  try {
    v = JSON.parse(text) as Partial<Checkpoint>;
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object' || v.version !== 1 || !isCount(v.size) || v.size === 0) return null;
  if (!isText(v.etag) || !isText(v.lastModified) || !Array.isArray(v.pieces)) return null;
  let next = 0;
  for (const p of v.pieces) {
    if (!Array.isArray(p) || p.length !== 3 || !p.every(isCount)) return null;
    const [start, end, done] = p;
    // Contiguous, in order, non-empty, covering [0, size): anything else is not our file.
    if (start !== next || end <= start || done > end - start) return null;
    next = end;
  }
  if (next !== v.size) return null;
  return v as Checkpoint;
}
