/**
 * Recording a live media playlist (one without EXT-X-ENDLIST): reload it as RFC 8216 6.3.4 says (after
 * a target duration when it changed, half of one when it did not; never sooner than a second, and by a
 * target of at most 30 s, whatever TARGETDURATION says), append the segments whose media
 * sequence number is past the last one planned, never one twice, and stop at EXT-X-ENDLIST, at the
 * job's max_duration, when asked (DELETE on a live job keeps what was recorded), or when the playlist
 * stops changing for three target durations (an encoder that died without saying so).
 */

import { sleep } from '../../net/retry.js';
import type { MediaPlaylist, Segment } from '../../playlist/model.js';
import type { Logger } from '../../service/log.js';
import { appendSegments, type TrackPlan, urlOf } from './track-plan.js';

export type LiveEnd = 'endlist' | 'max_duration' | 'stopped' | 'stalled';

export interface LiveOutcome {
  reason: LiveEnd;
  /** Segments that left the playlist's window before they could be fetched. */
  missed: number;
  /** Segments left out by `skip` (skip_segments), and their EXTINF seconds. */
  skipped: { segments: number; seconds: number };
}

/** What a track's downloader needs to know about a plan that grows. */
export interface Growth {
  readonly ended: boolean;
  /** Called after segments were appended, and once more when the recording ends. */
  onChange(listener: () => void): void;
}

export interface LiveOptions {
  reload: () => Promise<MediaPlaylist>;
  /** Seconds of media to record at most (the job's max_duration), or null. */
  maxDuration: number | null;
  /** DELETE on the live job: stop reloading and finish the file with what was recorded. */
  stop: AbortSignal;
  /** The job's own signal: cancellation or shutdown. */
  signal: AbortSignal;
  log: Logger;
  now?: () => number;
  /**
   * Segments not to record, by their URL (skip_segments): never fetched, and the next one recorded
   * starts a new discontinuity run, so the file has no hole where they were.
   */
  skip?: (url: string) => boolean;
}

/**
 * Shortest wait between two reloads, whatever the playlist says. RFC 8216 6.3.4 paces reloads by the
 * target duration, but TARGETDURATION 0 or negative made that no wait at all (642 reloads a second). A
 * real target is a whole number of seconds (4.3.3.1), so only a TARGETDURATION:1 stream's unchanged
 * reloads (half a target, 0.5 s) are slowed by this floor, and its window of at least three target
 * durations (6.2.2) leaves a second's delay nothing to miss.
 */
export const MIN_RELOAD_MS = 1000;

/**
 * Longest target duration believed, seconds. Without a cap a TARGETDURATION of 10^9 slept past any
 * end (and setTimeout turns more than 2^31 ms into 1 ms: it spun instead). Apple's authoring spec asks
 * for 6 s; a real stream with a larger target is reloaded more often than needed (harmless) and is
 * called stalled after 3 × 30 s unchanged.
 */
export const MAX_TARGET_S = 30;

/** The target duration when the playlist gives none usable and lists no segment to judge by. */
const DEFAULT_TARGET_S = 6;

/**
 * The target duration a recording paces its reloads and its stall rule by, seconds. A missing, zero,
 * negative or non-finite TARGETDURATION is replaced by the longest segment rounded up (4.3.3.1 makes the
 * target at least that), else DEFAULT_TARGET_S; the result is kept within 1..MAX_TARGET_S.
 */
export function liveTarget(media: Pick<MediaPlaylist, 'targetDuration' | 'segments'>): number {
  let target = media.targetDuration;
  if (target === null || !Number.isFinite(target) || target <= 0) {
    let longest = 0;
    for (const s of media.segments) {
      if (s.duration !== null && Number.isFinite(s.duration)) longest = Math.max(longest, s.duration);
    }
    target = longest > 0 ? Math.ceil(longest) : DEFAULT_TARGET_S;
  }
  return Math.min(MAX_TARGET_S, Math.max(1, target));
}

/**
 * Wait before the next reload, ms (6.3.4): a target duration after a reload that brought new segments,
 * half of one after one that did not; never less than MIN_RELOAD_MS.
 */
export function reloadDelayMs(target: number, grew: boolean): number {
  return Math.max(MIN_RELOAD_MS, (grew ? target : target / 2) * 1000);
}

/** Unchanged reloads for this many target durations end the recording. */
const STALL_TARGET_DURATIONS = 3;

export class LiveRecording implements Growth {
  private done = false;
  private readonly listeners: (() => void)[] = [];
  private missed = 0;
  private readonly skipped = { segments: 0, seconds: 0 };
  /** The last media sequence number skipped; with plan.lastMsn, the last one dealt with. */
  private lastSkipped = -1;
  /** A segment was skipped since the last one recorded. */
  private gap = false;
  private readonly now: () => number;

  constructor(
    private readonly plan: TrackPlan,
    private media: MediaPlaylist,
    private readonly o: LiveOptions,
  ) {
    this.now = o.now ?? Date.now;
  }

  get ended(): boolean {
    return this.done;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  private full(): boolean {
    return this.o.maxDuration !== null && this.plan.duration >= this.o.maxDuration;
  }

  /** The last media sequence number recorded or skipped. */
  private get lastMsn(): number {
    return Math.max(this.plan.lastMsn, this.lastSkipped);
  }

  /** The segments of `media` not planned yet, less those to skip, cut at max_duration. */
  private fresh(media: MediaPlaylist): Segment[] {
    const out: Segment[] = [];
    let duration = this.plan.duration;
    for (const s of media.segments) {
      if (s.msn <= this.lastMsn) continue;
      if (this.o.maxDuration !== null && duration >= this.o.maxDuration) break;
      if (this.o.skip?.(urlOf(s, media.baseUrl))) {
        this.skipped.segments++;
        this.skipped.seconds += s.duration ?? 0;
        this.lastSkipped = s.msn;
        this.gap = true;
        continue;
      }
      out.push(this.gap && !s.discontinuity ? { ...s, discontinuity: true } : s);
      this.gap = false;
      duration += s.duration ?? 0;
    }
    return out;
  }

  /**
   * Plans the segments of the first playlist (the caller has planned none yet), then reloads until the
   * recording ends. Resolves with why it ended; rejects only if the job itself is aborted or a reload
   * fails for good.
   */
  async record(): Promise<LiveOutcome> {
    try {
      const first = this.fresh(this.media);
      if (first.length > 0) appendSegments(this.plan, this.media, first);
      this.changed();
      const reason = await this.loop();
      this.o.log.info(
        {
          reason,
          seconds: Math.round(this.plan.duration),
          segments: this.plan.segmentCount,
          missed: this.missed,
          skipped: this.skipped.segments,
        },
        'live recording ended',
      );
      return { reason, missed: this.missed, skipped: { ...this.skipped } };
    } finally {
      this.done = true;
      this.changed();
    }
  }

  private async loop(): Promise<LiveEnd> {
    const { o } = this;
    let unchangedSince = this.now();
    let grew = true;
    for (;;) {
      if (this.media.endlist) return 'endlist';
      if (this.full()) return 'max_duration';
      if (o.stop.aborted) return 'stopped';
      const target = liveTarget(this.media);
      await this.wait(reloadDelayMs(target, grew));
      if (o.stop.aborted) return 'stopped';
      this.media = await o.reload();
      const before = this.lastMsn;
      // Fetched too slowly for the window: segments between the last dealt with and the playlist's
      // first are gone from it.
      const first = this.media.segments.find((x) => x.msn > before)?.msn ?? before + 1;
      const fresh = this.fresh(this.media);
      const gone = first - (before + 1);
      if (gone > 0 && before >= 0) {
        this.missed += gone;
        o.log.warn({ missed: gone, after: before }, 'segments left the live window unrecorded');
      }
      if (fresh.length > 0) {
        appendSegments(this.plan, this.media, fresh);
        this.changed();
      }
      // Skipped segments are the playlist moving on too: neither a stall nor a reason to reload sooner.
      grew = this.lastMsn > before;
      if (grew) {
        unchangedSince = this.now();
      } else if (
        !this.media.endlist &&
        this.now() - unchangedSince >= STALL_TARGET_DURATIONS * target * 1000
      ) {
        return 'stalled';
      }
    }
  }

  /** Sleeps, waking early on stop; the job's own abort rejects. */
  private async wait(ms: number): Promise<void> {
    const { stop, signal } = this.o;
    const both = AbortSignal.any([stop, signal]);
    try {
      await sleep(ms, both);
    } catch (err) {
      if (signal.aborted) throw err;
    }
  }
}
