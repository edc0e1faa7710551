import type { JobProgress } from '../jobs/types.js';

const WINDOW_MS = 5000;

/** Bytes/s over a window of samples, measured to `now`, so a stalled transfer's speed decays to zero. */
function rateOf(samples: readonly { at: number; bytes: number }[], now: number): number {
  const first = samples[0];
  const last = samples.at(-1);
  if (!first || !last) return 0;
  const elapsed = Math.max(now, last.at) - first.at;
  if (elapsed < 200) return 0;
  return ((last.bytes - first.bytes) * 1000) / elapsed;
}

/**
 * Progress accounting for one job: bytes and segments in, a smoothed speed (bytes over the last five
 * seconds, so a stall shows as a falling speed rather than the lifetime average) and an ETA.
 * `progress` is by segments when there are segments, else by bytes against a known total.
 */
export class ProgressTracker {
  private samples: { at: number; bytes: number }[] = [];
  private bytes = 0;
  private totalBytes: number | null = null;
  private segments = 0;
  private totalSegments = 0;
  private recorded: number | null = null;
  /** Bytes read off the network so far, when something counts them as they come (measureBy). */
  private reads: { count: () => number; samples: { at: number; bytes: number }[] } | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  setTotals(t: { bytes?: number | null; segments?: number }): void {
    if (t.bytes !== undefined) this.totalBytes = t.bytes;
    if (t.segments !== undefined) this.totalSegments = t.segments;
  }

  /** Bytes already on disk when a job resumes: counted as done but not as speed. */
  setDoneBytes(bytes: number): void {
    this.bytes = bytes;
    this.samples = [];
  }

  addBytes(n: number): void {
    this.bytes += n;
    const at = this.now();
    this.samples.push({ at, bytes: this.bytes });
    while (this.samples.length > 2 && this.samples[0]!.at < at - WINDOW_MS) this.samples.shift();
  }

  addSegment(): void {
    this.segments += 1;
  }

  /** Live recordings: `seconds` more of media are in. */
  addRecorded(seconds: number): void {
    this.recorded = (this.recorded ?? 0) + seconds;
  }

  get downloadedBytes(): number {
    return this.bytes;
  }

  /**
   * Measures the speed by a counter of bytes as they are read (a speed-limited job's RateLimiter)
   * rather than by addBytes: HLS adds a segment's bytes when it is whole, and under a speed limit the
   * segments in flight share the budget and end close together, which would show as a spike.
   */
  measureBy(count: () => number): void {
    this.reads = { count, samples: [] };
  }

  speed(): number {
    if (this.reads) {
      const at = this.now();
      const samples = this.reads.samples;
      samples.push({ at, bytes: this.reads.count() });
      while (samples.length > 2 && samples[0]!.at < at - WINDOW_MS) samples.shift();
      return rateOf(samples, at);
    }
    return rateOf(this.samples, this.now());
  }

  snapshot(): JobProgress {
    const speed = this.speed();
    let progress = 0;
    if (this.totalSegments > 0) progress = (this.segments / this.totalSegments) * 100;
    else if (this.totalBytes) progress = (this.bytes / this.totalBytes) * 100;
    let eta: number | null = null;
    if (speed > 0) {
      if (this.totalBytes) eta = Math.max(0, (this.totalBytes - this.bytes) / speed);
      else if (this.totalSegments > 0 && this.segments > 0) {
        const perSegment = this.bytes / this.segments;
        eta = Math.max(0, ((this.totalSegments - this.segments) * perSegment) / speed);
      }
    }
    return {
      progress: Math.min(100, Math.round(progress * 100) / 100),
      total_segments: this.totalSegments,
      downloaded_segments: this.segments,
      downloaded_bytes: this.bytes,
      total_bytes: this.totalBytes,
      speed_bps: Math.round(speed),
      eta_seconds: eta === null ? null : Math.round(eta * 10) / 10,
      recorded_seconds: this.recorded === null ? null : Math.round(this.recorded * 1000) / 1000,
    };
  }
}
