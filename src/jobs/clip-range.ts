/**
 * Clips by time: the `start` and `end` of a job's request, as seconds or "HH:MM:SS(.mmm)" (the forms
 * ffmpeg's -ss/-to and yt-dlp's --download-sections take), read into seconds once, at submission.
 */
import { GabeError } from '../service/errors.js';
import type { JobRequest } from './types.js';

/** Seconds ("90", "12.5") or [HH:]MM:SS with optional milliseconds ("1:02:03.250", "02:03"). */
export const CLIP_TIME_PATTERN = '^(\\d+(\\.\\d+)?|(\\d+:)?[0-5]?\\d:[0-5]?\\d(\\.\\d{1,3})?)$';
const CLIP_TIME = new RegExp(CLIP_TIME_PATTERN);

export interface ClipRange {
  /** Seconds from the start of the media. */
  start: number;
  /** Seconds from the start of the media; null: to the end. */
  end: number | null;
}

/** Seconds for one clip time; throws VALIDATION for anything else. */
export function parseClipTime(value: number | string, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0)
      throw new GabeError('VALIDATION', `${field} must be ≥ 0 seconds`);
    return value;
  }
  const text = value.trim();
  if (!CLIP_TIME.test(text)) {
    throw new GabeError(
      'VALIDATION',
      `${field} must be seconds or HH:MM:SS(.mmm), not "${text.slice(0, 40)}"`,
    );
  }
  return text.split(':').reduce((total, part) => total * 60 + Number(part), 0);
}

/** The request's clip, or null when it asks for the whole media. Throws VALIDATION when end ≤ start. */
export function clipRange(request: Pick<JobRequest, 'start' | 'end'>): ClipRange | null {
  const hasStart = request.start !== undefined && request.start !== null;
  const hasEnd = request.end !== undefined && request.end !== null;
  if (!hasStart && !hasEnd) return null;
  const start = hasStart ? parseClipTime(request.start as number | string, 'start') : 0;
  const end = hasEnd ? parseClipTime(request.end as number | string, 'end') : null;
  if (end !== null && end <= start)
    throw new GabeError('VALIDATION', `end (${end} s) must be after start (${start} s)`);
  if (start === 0 && end === null) return null;
  return { start, end };
}
