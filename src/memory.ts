/**
 * V8 grows the young generation to 16 MB per semi-space (three of them committed) when allocation is
 * fast, and downloading allocates fast: every network read is a new Buffer. The objects that live
 * there are small and die young, so the growth buys little but costs Gabe's processes ~30 MB of RSS
 * (measured: `gabe download` of 240 MB peaked at 143 MB, 122 MB with growth off, CPU the same).
 * The growth factor is read each time V8 would grow the space, so it can be set once running.
 */
import { setFlagsFromString } from 'node:v8';

/** V8 majors known to have the flag (Node 20: 11, 22: 12, 24: 13); others print a warning for it. */
const KNOWN_V8 = new Set([11, 12, 13]);

/** Keeps V8's young generation at its starting size; true if the V8 in use takes the setting. */
export function keepYoungGenerationSmall(): boolean {
  const major = Number(process.versions.v8.split('.')[0]);
  if (!KNOWN_V8.has(major)) return false;
  setFlagsFromString('--semi-space-growth-factor=1');
  return true;
}
