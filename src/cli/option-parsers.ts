/** Commander argument parsers and collectors shared by the commands: each rejects a bad value by name. */
import { InvalidArgumentError } from 'commander';
import { parseClipTime } from '../jobs/clip-range.js';
import { parseSpeed } from '../net/speed.js';
import { skipRules } from '../pipeline/hls/skip-rules.js';
import { parseResolutionPreference } from '../playlist/selection.js';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('a port is a number from 0 to 65535');
  return n;
}

export function parseConcurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256)
    throw new InvalidArgumentError('a whole number from 1 to 256');
  return n;
}

export function parseResolution(value: string): string {
  try {
    parseResolutionPreference(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

/** `-H "Referer: https://x/"`, repeatable, as curl takes them. */
export function collectHeader(value: string, previous: string[] = []): string[] {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(value)) throw new InvalidArgumentError('use "Name: value"');
  return [...previous, value];
}

export function headersOf(lines: string[] | undefined): Record<string, string> | undefined {
  if (!lines?.length) return undefined;
  const out: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function parseHex128(value: string): string {
  if (!/^(0[xX])?[0-9a-fA-F]{32}$/.test(value)) throw new InvalidArgumentError('32 hexadecimal digits');
  return value;
}

export function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a number of seconds above 0');
  return n;
}

/** `--start 90`, `--end 1:02:03.5`: checked here, sent as written (the service reads them the same way). */
export function parseClipTimeOption(value: string): string {
  try {
    parseClipTime(value, 'the time');
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

/** `--skip-segments <regex>`, repeatable: each pattern checked as the service checks it. */
export function collectSkipPattern(value: string, previous: string[] = []): string[] {
  try {
    skipRules({ skip_segments: [value] });
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return [...previous, value];
}

/** `--limit-rate 5M`: bytes per second (K/M/G in powers of 1024), kept as written for the request. */
export function parseSpeedOption(value: string): string {
  try {
    parseSpeed(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

/** `--container`: the output container, as the API's `container` takes it. */
export function parseContainer(value: string): 'mp4' | 'mkv' {
  const v = value.toLowerCase();
  if (v !== 'mp4' && v !== 'mkv') throw new InvalidArgumentError('mp4 or mkv');
  return v;
}
