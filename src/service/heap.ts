/**
 * Two V8 heap settings for Gabe's processes, both read by V8 each time it sizes the heap, so they
 * can be set once running (the CLI does it first thing):
 *
 * - The young generation stays at its starting size. V8 grows it to 16 MB per semi-space when
 *   allocation is fast, and downloading allocates fast; what lives there is small and dies young, so
 *   the growth bought no speed here but cost ~15 MB of RSS.
 * - The old generation is collected when it has grown by half since the last collection, not when
 *   it has doubled or more. Every request leaves a few kilobytes of promoted garbage; on a 6,000-
 *   segment stream that piled up to ~20 MB above the live heap before each collection, and the peak
 *   RSS grew with the stream's length (measured with the bench: 6,000 segments 139 -> 121 MB,
 *   600 segments 117 -> 108 MB, the same CPU within noise).
 */
import { setFlagsFromString } from 'node:v8';

/** V8 majors known to have both flags (Node 20: 11, 22: 12, 24: 13); others would print a warning. */
const KNOWN_V8 = new Set([11, 12, 13]);

/** Applies the settings; false (and nothing changed) on a V8 they are not known for. */
export function keepHeapSmall(): boolean {
  const major = Number(process.versions.v8.split('.')[0]);
  if (!KNOWN_V8.has(major)) return false;
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--heap-growing-percent=50');
  return true;
}
