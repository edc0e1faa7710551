/**
 * One request of a track (a segment, an init section, or coalesced byte ranges): fetched with
 * retries, checked (an HTML page or a playlist where media belongs, a body shorter than announced, a
 * 0-byte answer), decrypted, and a fake image header cut off. Small bodies are read whole into a
 * pooled buffer; a body the memory budget (memory-budget.ts) cannot take streams through the same checks
 * into a spill file (segment-spill.ts) instead.
 */

import { type HttpResponse, MAX_BODY_BYTES } from '../../net/client.js';
import { withRetry } from '../../net/retry.js';
import { GabeError, originStatus, toGabeError } from '../../service/errors.js';
import { THROTTLE_STATUSES } from '../adaptive.js';
import type { BufferPool } from '../buffer-pool.js';
import { decryptAes128 } from './key-cache.js';
import type { SegmentBudget, Ticket } from './memory-budget.js';
import { checkMedia, describe, lengthRefusal, logDisguise, undisguise } from './segment-checks.js';
import { SpillFile } from './segment-spill.js';
import { SegmentStream, type StreamPiece } from './segment-stream.js';
import type { TrackOptions } from './track-download.js';
import type { Fetch, Piece } from './track-plan.js';

/** Current URLs of a piece: the plan's, or newer ones from a reloaded playlist. */
export interface PieceUrls {
  url: string;
  keyUri: string | null;
}

/** What a fetch needs besides the track's options. */
export interface FetchContext {
  signal: AbortSignal;
  urlsOf: (p: Piece) => PieceUrls;
  onThrottle: () => void;
  pool: BufferPool;
  budget: SegmentBudget;
}

/**
 * A request's media: in memory (one buffer per piece when there are several), or in a spill file
 * with the size of each piece in it.
 */
export type Fetched =
  | { buffers: Buffer[]; spill: null }
  | { buffers: null; spill: SpillFile; sizes: number[] };

/**
 * Fetches one request's bytes (possibly several coalesced byte ranges), checks and decrypts each piece.
 * A server that ignores Range answers 200 with the whole resource: the ranges are cut out of it.
 * `ticket` is the request's share of the memory budget: what it holds stays held until the caller
 * releases it (once written).
 */
export async function fetchPieces(
  f: Fetch,
  o: TrackOptions,
  c: FetchContext,
  ticket: Ticket,
): Promise<Fetched> {
  const { signal, urlsOf, pool, budget } = c;
  const range = f.range ? { start: f.range.offset, end: f.range.offset + f.range.length - 1 } : undefined;
  const url = urlsOf(f.pieces[0]!).url;
  const alloc = (size: number) => pool.take(size);
  const got = await withRetry(
    async (): Promise<{ chunks: Buffer[] } | { spill: SpillFile; sizes: number[] }> => {
      const res = await o.http.open(url, { signal, range });
      try {
        if (res.contentLength !== null && budget.hold(ticket, res.contentLength)) {
          // The common case, a small body of known length: read whole into one pooled buffer.
          const { chunks, length } = await o.http.readWhole(url, res, { alloc });
          return { chunks: wholeChecked(f, url, chunks, length, res, o) };
        }
        const it = res.body[Symbol.asyncIterator]();
        const held: Buffer[] = [];
        if (res.contentLength === null) {
          // No length: held in memory while the budget allows, then streamed on to disk.
          let total = 0;
          for (;;) {
            const r = await it.next().catch((err: unknown) => {
              throw toGabeError(err);
            });
            if (r.done) return { chunks: wholeChecked(f, url, held, total, res, o) };
            const chunk = r.value as Buffer;
            held.push(chunk);
            total += chunk.length;
            if (!budget.hold(ticket, chunk.length)) break;
          }
          budget.release(ticket);
        }
        return await streamToSpill(f, url, res, it, held, o, c);
      } catch (err) {
        budget.release(ticket);
        throw err;
      }
    },
    o.policy,
    {
      signal,
      onRetry: (err, attempt, delayMs) => {
        o.onRetry?.();
        if (THROTTLE_STATUSES.has(originStatus(err) ?? 0)) c.onThrottle();
        o.log.warn({ url, err: err.message, attempt, delayMs }, 'segment fetch failed; retrying');
      },
    },
  ).catch((raw: unknown) => {
    const err = toGabeError(raw);
    if (err.kind === 'CANCELLED' || err.kind === 'SEGMENT' || err.kind === 'KEY') throw err;
    const status = originStatus(err);
    throw new GabeError(
      'SEGMENT',
      `${describe(f.pieces[0]!, o.label)} failed${status ? ` with HTTP ${status}` : ''}: ${err.message}`,
      { cause: err, details: { status, url } },
    );
  });
  if ('spill' in got) return { buffers: null, spill: got.spill, sizes: got.sizes };
  return { buffers: await piecesOf(f, got.chunks, o, urlsOf), spill: null };
}

/** A request's media read whole, piece by piece: cut out of the coalesced ranges, decrypted, checked. */
async function piecesOf(
  f: Fetch,
  chunks: Buffer[],
  o: TrackOptions,
  urlsOf: (p: Piece) => PieceUrls,
): Promise<Buffer[]> {
  const only = f.pieces.length === 1 ? f.pieces[0]! : null;
  if (only && !only.decrypt) {
    // The common case, a whole clear segment: its chunks go to disk as they came.
    checkMedia(chunks, only, o, urlsOf);
    return undisguise(chunks, o);
  }
  const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const out: Buffer[] = [];
  let offset = 0;
  for (const piece of f.pieces) {
    let bytes = only ? data : data.subarray(offset, offset + piece.range!.length);
    offset += bytes.length;
    if (piece.decrypt) {
      const key = await o.keys.get(urlsOf(piece).keyUri ?? piece.decrypt.keyUri);
      bytes = decryptAes128(bytes, key, piece.decrypt.iv, describe(piece, o.label));
    }
    checkMedia([bytes], piece, o, urlsOf);
    out.push(...undisguise([bytes], o));
  }
  return out;
}

/** A whole body's checks (lengthRefusal; readWhole checked its Content-Length), the range cut out of a 200. */
function wholeChecked(
  f: Fetch,
  url: string,
  chunks: Buffer[],
  length: number,
  res: HttpResponse,
  o: TrackOptions,
): Buffer[] {
  o.progress.addBytes(length);
  const ofWhole = f.range !== null && res.status === 200;
  const refusal = lengthRefusal(f, url, length, ofWhole, null);
  if (refusal) throw refusal;
  if (ofWhole)
    return [Buffer.concat(chunks, length).subarray(f.range!.offset, f.range!.offset + f.range!.length)];
  return chunks;
}

/**
 * The rest of a body (after `first`, already read) through the same checks into a spill file. A
 * failure removes the file: the retry starts from nothing.
 */
async function streamToSpill(
  f: Fetch,
  url: string,
  res: HttpResponse,
  it: AsyncIterator<unknown>,
  first: Buffer[],
  o: TrackOptions,
  c: FetchContext,
): Promise<{ spill: SpillFile; sizes: number[] }> {
  // A server that ignored Range sent the whole resource: the range is cut out, the rest not read.
  const whole = f.range !== null && res.status === 200;
  let spill: SpillFile | null = null;
  let total = 0;
  let ended = false;
  try {
    const pieces: StreamPiece[] = [];
    for (const p of f.pieces) {
      const key = p.decrypt ? await o.keys.get(c.urlsOf(p).keyUri ?? p.decrypt.keyUri) : null;
      pieces.push({
        length: f.pieces.length > 1 || whole ? p.range!.length : null,
        decrypt: key ? { key, iv: p.decrypt!.iv } : null,
        what: describe(p, o.label),
      });
    }
    const file = await SpillFile.create(o.file, f.pieces[0]!.index);
    spill = file;
    if (f.range && !whole && res.contentLength !== null && res.contentLength !== f.range.length) {
      throw new GabeError(
        'TRUNCATED',
        `${f.url}: got ${res.contentLength} bytes of a ${f.range.length}-byte range`,
      );
    }
    const stream = new SegmentStream({
      pieces,
      skip: whole ? f.range!.offset : 0,
      fmp4: o.plan.fmp4,
      check: (head, i) => checkMedia([head], f.pieces[i]!, o, c.urlsOf),
      onDisguise: (found) => logDisguise(o, found.kind, found.offset),
      write: (data) => file.write(data),
    });
    const take = async (chunk: Buffer) => {
      total += chunk.length;
      if (total > MAX_BODY_BYTES) {
        throw new GabeError('PLAYLIST_TOO_LARGE', `${url} is larger than ${MAX_BODY_BYTES} bytes`);
      }
      await stream.push(chunk);
    };
    for (const chunk of first) await take(chunk);
    while (!(whole && stream.complete)) {
      const r = await it.next().catch((err: unknown) => {
        throw toGabeError(err);
      });
      if (r.done) {
        ended = true;
        break;
      }
      await take(r.value as Buffer);
    }
    // (The whole resource sent for a range was read up to the range's end: `total` covers it or not.)
    const refusal = lengthRefusal(f, url, total, whole, whole ? null : res.contentLength);
    if (refusal) throw refusal;
    await stream.end();
    await file.finish();
    o.progress.addBytes(total);
    return { spill: file, sizes: stream.sizes };
  } catch (err) {
    await spill?.remove();
    throw err;
  } finally {
    // Not read to its end (a failure, or the range was all that was wanted): the connection goes.
    if (!ended) res.body.destroy();
  }
}
