/**
 * The checkpoint beside a track file (`<track>.json`): what the file durably holds, so a restarted job
 * fetches only what is missing.
 */
import { readFile } from 'node:fs/promises';
import { replaceFile } from '../../storage/paths.js';

/** Durable progress of one track: how many fetches are in the file, and how many bytes that is. */
export interface TrackCheckpoint {
  fingerprint: string;
  fetches: number;
  bytes: number;
  segments: number;
  /** Media sequence number of the last segment in the file (live recordings continue after it). */
  lastMsn: number;
  /** EXTINF seconds in the file. */
  seconds: number;
  /** Byte offset in the file where each discontinuity run starts (the first at 0). */
  runStarts: number[];
}

/**
 * Replaces the checkpoint beside `file` atomically (replaceFile), as the MP4 part file's is: written
 * in place, a crash or a reader mid-write met a truncated document and threw the whole track's
 * progress away. One write at a time per track file (the track's writer awaits each).
 */
export function writeCheckpoint(file: string, cp: TrackCheckpoint): Promise<void> {
  return replaceFile(`${file}.json`, JSON.stringify(cp));
}

/** The checkpoint beside a track file, if it was written for `fingerprint`. */
export async function readCheckpoint(file: string, fingerprint: string): Promise<TrackCheckpoint | null> {
  try {
    const cp = JSON.parse(await readFile(`${file}.json`, 'utf8')) as TrackCheckpoint;
    if (cp.fingerprint !== fingerprint || !Array.isArray(cp.runStarts)) return null;
    return cp;
  } catch {
    return null;
  }
}
