/**
 * How much of a track's segment data may sit in memory, and what goes to disk instead. A body is
 * held in memory (one pooled buffer, the fast path) only when it is small and fits what is left of
 * the track's cap; any other streams into a spill file as it arrives (segment-spill.ts). So memory is bounded
 * whatever the origin sends: 128 MB segments, a Content-Length that lies low in the playlist's
 * BANDWIDTH, or no length at all.
 *
 * Requests are launched against a smaller window, from what is expected of them (byte ranges,
 * the average so far, or BANDWIDTH × EXTINF before the first one is in), so that the ordinary case
 * keeps its bodies in memory and the cap only catches the surprises.
 *
 * Pure: the track reports launches, answers and writes.
 */
import type { Fetch } from './track-plan.js';

/** A body larger than this streams to a spill file, whatever memory is free (= track-plan.ts's coalescing cap). */
export const LARGE_BODY_BYTES = 8 * 1024 * 1024;
/**
 * Requests are launched while what is held plus what is expected of those not answered yet stays
 * below this: about three times what is in flight at 120 MB/s with 100 ms per request. Against the
 * bench origin it downloads as fast as 48 MB did, 16 MB cost 15% of the speed.
 */
export const WINDOW_BYTES = 32 * 1024 * 1024;
/**
 * Segment bodies one track holds in memory at most (in flight with a known size, and waiting for
 * their turn to be written). Above the window by enough for bodies a little larger than expected.
 */
export const MEMORY_CAP_BYTES = 48 * 1024 * 1024;

/** One request's share of the budget: what it was expected to bring, then what it holds. */
export interface Ticket {
  expected: number;
  held: number;
}

export class SegmentBudget {
  /** Bytes of bodies held in memory. */
  private held = 0;
  /** Bytes expected of requests launched but not answered yet (those expected to be small). */
  private expected = 0;

  constructor(
    readonly cap = MEMORY_CAP_BYTES,
    readonly window = WINDOW_BYTES,
    readonly large = LARGE_BODY_BYTES,
  ) {}

  /**
   * May a request expected to bring `bytes` start? The one the writer waits for always may; so may
   * one expected to be large, as it goes to disk anyway.
   */
  mayLaunch(bytes: number, next: boolean): boolean {
    return next || bytes > this.large || this.held + this.expected + bytes <= this.window;
  }

  launch(bytes: number): Ticket {
    const expected = bytes > this.large ? 0 : bytes;
    this.expected += expected;
    return { expected, held: 0 };
  }

  /** Takes `bytes` more for the ticket's body in memory if the cap allows; false: it must spill. */
  hold(t: Ticket, bytes: number): boolean {
    this.answered(t);
    if (t.held + bytes > this.large || this.held + bytes > this.cap) return false;
    t.held += bytes;
    this.held += bytes;
    return true;
  }

  /** The request has its answer: what was expected of it no longer counts. */
  answered(t: Ticket): void {
    this.expected -= t.expected;
    t.expected = 0;
  }

  /** The ticket's body was written, spilled or dropped. */
  release(t: Ticket): void {
    this.answered(t);
    this.held -= t.held;
    t.held = 0;
  }

  get heldBytes(): number {
    return this.held;
  }
}

/**
 * What a request is expected to bring: its byte range, else the average body so far, else the
 * variant's BANDWIDTH over the pieces' EXTINF (an upper bound: it counts every rendition), else 0.
 */
export function expectedBytes(f: Fetch, average: number, bitsPerSecond: number | null): number {
  if (f.range) return f.range.length;
  if (average > 0) return average;
  if (!bitsPerSecond || !Number.isFinite(bitsPerSecond) || bitsPerSecond <= 0) return 0;
  let seconds = 0;
  for (const p of f.pieces) seconds += p.duration;
  return Math.ceil((bitsPerSecond / 8) * seconds);
}
