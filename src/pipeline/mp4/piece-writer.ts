/**
 * Streams one ranged response into its piece of the part file: positioned writes through a buffer of
 * at most `flushAt` bytes, the piece's transfer rate measured on the way, a piece shortened by a
 * split left where the split put its end.
 */
import type { FileHandle } from 'node:fs/promises';
import type { HttpResponse } from '../../net/client.js';
import { GabeError } from '../../service/errors.js';
import type { DownloadContext } from '../context.js';
import { writeAt } from './part-file.js';
import type { PieceState } from './range-plan.js';

/** A transfer's rate is trusted once it has run this long. */
const RATE_AFTER_MS = 200;

/** Bytes read from one response and not yet written to the part file. */
interface Pending {
  buffers: Buffer[];
  bytes: number;
}

export class PieceWriter {
  constructor(
    private readonly ctx: DownloadContext,
    private readonly fh: FileHandle,
    /** The URL the pieces come from, for the error message. */
    private readonly url: string,
    /** Bytes one piece buffers at most before a write. */
    private readonly flushAt: number,
    /** Called after each write with its size, before the next chunk is read. */
    private readonly onWritten: (bytes: number) => Promise<void>,
  ) {}

  /** Reads one response into the piece, up to `end` or to where a split shortened the piece. */
  async stream(piece: PieceState, res: HttpResponse, end: number): Promise<void> {
    const { ctx } = this;
    const pending: Pending = { buffers: [], bytes: 0 };
    const from = piece.received;
    const began = performance.now();
    piece.rateBps = null;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const room = Math.min(piece.end, end) - piece.received;
        if (room <= 0) break;
        const b = chunk.length > room ? chunk.subarray(0, room) : chunk;
        pending.buffers.push(b);
        pending.bytes += b.length;
        piece.received += b.length;
        ctx.progress.addBytes(b.length);
        // Throttled by the caller: progress moves with the bytes, not only with the writes.
        ctx.reportProgress();
        const elapsed = performance.now() - began;
        if (elapsed >= RATE_AFTER_MS) piece.rateBps = ((piece.received - from) * 1000) / elapsed;
        if (pending.bytes >= this.flushAt) await this.flush(piece, pending);
        // Shortened by a split: the rest belongs to another piece. Leaving the loop destroys the
        // body and so this socket; a response read to its natural end keeps its socket alive.
        if (piece.received >= piece.end && piece.end < end) break;
      }
    } finally {
      // What arrived is kept even when the transfer broke, so the retry resumes after it.
      await this.flush(piece, pending);
    }
    const want = Math.min(piece.end, end);
    if (piece.received < want) {
      throw new GabeError(
        'TRUNCATED',
        `bytes ${from}-${end - 1} of ${this.url} ended after ${piece.received - from} bytes`,
      );
    }
  }

  /** Writes what the piece has buffered at its offset. */
  private async flush(piece: PieceState, pending: Pending): Promise<void> {
    if (pending.bytes === 0) return;
    const buffers = pending.buffers;
    const n = pending.bytes;
    pending.buffers = [];
    pending.bytes = 0;
    await writeAt(this.fh, buffers, piece.written);
    piece.written += n;
    await this.onWritten(n);
  }
}
