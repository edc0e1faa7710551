import { readFileSync } from 'node:fs';

/** An MP4 download's checkpoint as written beside its part file, read without the code under test. */
export interface SavedRanges {
  size: number;
  /** [start, end, bytes done from start] per piece. */
  pieces: [number, number, number][];
}

export function readSavedRanges(file: string): SavedRanges | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as SavedRanges;
  } catch {
    return null;
  }
}

/** Bytes the checkpoint says are on disk. */
export const savedBytes = (cp: SavedRanges | null): number => cp?.pieces.reduce((n, p) => n + p[2], 0) ?? 0;
