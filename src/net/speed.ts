/**
 * Speed limits as users write them (yt-dlp's --limit-rate, N_m3u8DL-RE's --max-speed): bytes per
 * second, as a number or with a K/M/G suffix in powers of 1024.
 */
import { GabeError } from '../service/errors.js';

export const SPEED_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG]([iI]?[bB])?|[bB])?\\s*$';
const SPEED = new RegExp(SPEED_PATTERN);
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Bytes per second; null for null/undefined (no limit). Throws VALIDATION for anything unreadable. */
export function parseSpeed(value: number | string | null | undefined, field = 'max_speed'): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 1)
      throw new GabeError('VALIDATION', `${field} must be ≥ 1 byte/s`);
    return Math.floor(value);
  }
  if (!SPEED.test(value)) {
    throw new GabeError(
      'VALIDATION',
      `${field} must be bytes per second, e.g. 500K or 5M, not "${value.slice(0, 40)}"`,
    );
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGbB]?)/.exec(value)!;
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (bytes < 1) throw new GabeError('VALIDATION', `${field} must be ≥ 1 byte/s`);
  return bytes;
}
