/**
 * The HTTP semantics of GET /job/{id}/file, whether the bytes come from output_path or from S3:
 * validators (ETag, If-None-Match, If-Range) and one byte range. Pure: headers in, a plan out.
 */
import { GabeError } from '../service/errors.js';

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` (one range; clients asking for several get the whole file). */
export function parseRangeHeader(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'invalid' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.includes(',') ? null : 'invalid';
  const [, a, b] = m;
  if (a === '' && b === '') return 'invalid';
  let start: number;
  let end: number;
  if (a === '') {
    start = Math.max(0, size - Number(b));
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}

export type FilePlan =
  | { status: 304 }
  | { status: 416 }
  | { status: 200 }
  | { status: 206; start: number; end: number };

export interface FileRequestHeaders {
  'if-none-match'?: string | undefined;
  'if-range'?: string | undefined;
  range?: string | undefined;
}

/** What to answer for a file of `size` bytes whose validator is `etag`. */
export function planFileResponse(headers: FileRequestHeaders, size: number, etag: string): FilePlan {
  if (headers['if-none-match'] === etag) return { status: 304 };
  // If-Range: a resume against a changed file must get the whole new file, not a spliced one.
  const ifRange = headers['if-range'];
  const range = ifRange && ifRange !== etag ? null : parseRangeHeader(headers.range, size);
  if (range === 'invalid') return { status: 416 };
  return range ? { status: 206, ...range } : { status: 200 };
}

/** The 416 answer's error (the caller sets `content-range: bytes *\/size` first). */
export function unsatisfiableRange(): GabeError {
  return new GabeError('BAD_REQUEST', 'the requested range is not satisfiable', { httpStatus: 416 });
}
