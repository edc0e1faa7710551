/** The segments a DASH Representation addresses (pure). */
import type { ByteRange } from '../model.js';
import type { Mpd, Period, Representation } from './mpd-model.js';

export interface DashInit {
  url: string;
  range: ByteRange | null;
}

export interface DashSegment {
  url: string;
  range: ByteRange | null;
  /** Seconds from the period's start (presentationTimeOffset taken off). */
  start: number;
  /** Seconds. */
  duration: number;
  /** $Number$ value (SegmentList/timeline: startNumber + index): stable across MPD reloads. */
  number: number;
}

export type RepresentationSegments =
  | { kind: 'segments'; init: DashInit | null; segments: DashSegment[] }
  // SegmentBase: the segments are in the sidx at indexRange (absent: the sidx follows the init in the file's head)
  | {
      kind: 'index';
      url: string;
      indexRange: ByteRange | null;
      init: DashInit | null;
      periodDuration: number | null;
    };

export function representationSegments(
  _mpd: Mpd,
  _period: Period,
  _rep: Representation,
  _opts?: { nowMs?: number },
): RepresentationSegments {
  throw new Error('not yet');
}
