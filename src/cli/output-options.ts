/**
 * The flags `gabe download` and `gabe submit` share for what a job makes and how: a clip, ad skipping,
 * a speed limit, a poster frame, the container. Each is checked here as the service checks it, and
 * goes into the request as written.
 */
import type { Command } from 'commander';
import type { JobRequest } from '../jobs/types.js';
import {
  collectSkipPattern,
  parseClipTimeOption,
  parseContainer,
  parseSeconds,
  parseSpeedOption,
} from './option-parsers.js';

export interface OutputFlags {
  start?: string;
  end?: string;
  skipSegments?: string[];
  skipDiscontinuityRuns?: number;
  limitRate?: string;
  maxSpeed?: string;
  thumbnail?: boolean;
  container?: 'mp4' | 'mkv';
}

export function outputOptions(command: Command): Command {
  return command
    .option('--start <time>', 'clip from this time: seconds or HH:MM:SS(.mmm) (VOD)', parseClipTimeOption)
    .option('--end <time>', 'clip up to this time: seconds or HH:MM:SS(.mmm) (VOD)', parseClipTimeOption)
    .option(
      '--skip-segments <regex>',
      'skip segments whose URL matches (repeatable; HLS)',
      collectSkipPattern,
    )
    .option(
      '--skip-discontinuity-runs <s>',
      'skip runs between discontinuities lasting at most this many seconds (ad breaks; HLS)',
      parseSeconds,
    )
    .option('--limit-rate <speed>', 'at most this many bytes/s, e.g. 500K or 5M', parseSpeedOption)
    .option('--max-speed <speed>', 'the same as --limit-rate', parseSpeedOption)
    .option('--thumbnail', 'also save a poster frame, <name>.jpg, beside the file')
    .option(
      '--container <c>',
      'mp4 (default) or mkv (remuxed by ffmpeg; .mka with --audio-only)',
      parseContainer,
    );
}

/** The request fields the flags set; `manifest` false (an MP4 URL) leaves out what only HLS/DASH takes. */
export function outputRequest(opts: OutputFlags, manifest = true): Partial<JobRequest> {
  const request: Partial<JobRequest> = {};
  if (opts.start !== undefined) request.start = opts.start;
  if (opts.end !== undefined) request.end = opts.end;
  if (manifest && opts.skipSegments?.length) request.skip_segments = opts.skipSegments;
  if (manifest && opts.skipDiscontinuityRuns) request.skip_discontinuity_runs = opts.skipDiscontinuityRuns;
  const speed = opts.limitRate ?? opts.maxSpeed;
  if (speed !== undefined) request.max_speed = speed;
  if (opts.thumbnail) request.thumbnail = true;
  if (opts.container) request.container = opts.container;
  return request;
}
