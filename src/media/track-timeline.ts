/**
 * The 90 kHz clock of the in-process remux's tracks: MPEG-TS timestamps unwrapped (33 bits, ISO/IEC
 * 13818-1 2.4.3.7) onto one timeline that every track of a remux shares. Pure.
 */

export const WRAP = 2 ** 33;
export const HALF_WRAP = 2 ** 32;
export const TS_HZ = 90_000;
/** Timestamps running backwards by more than this are a discontinuity, not jitter: ffmpeg's job. */
export const MAX_BACKWARDS = TS_HZ;
/**
 * The one 90 kHz timeline of a remux's tracks. Each track unwraps its 33-bit timestamps (they wrap
 * every 26.5 hours) next to its own previous one, and its first next to the first any track had: a
 * video track that starts just before the wrap and an audio track that starts just after it then
 * stay 0.1 s apart instead of 26.5 hours (ffmpeg keeps one wrap reference per program for the same
 * reason). Separate renditions share the clock too (RFC 8216 6.2.4).
 */
export class Timeline {
  reference: number | null = null;
}

/** 33-bit PES timestamps of one track, on its Timeline. */
export class Unwrapper {
  private last: number | null = null;
  constructor(private readonly timeline: Timeline) {}
  map(ts: number): number {
    const near = this.last ?? this.timeline.reference;
    const v = near === null ? ts : ts + Math.round((near - ts) / WRAP) * WRAP;
    this.timeline.reference ??= v;
    this.last = v;
    return v;
  }
}
