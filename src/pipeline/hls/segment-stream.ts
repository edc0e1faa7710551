/**
 * One request's bytes turned into its pieces' media as they arrive, for bodies too large to hold
 * (memory-budget.ts): the bytes before a byte range dropped (a server that ignored Range), the body split
 * into its pieces, each decrypted with its own AES-128 key and IV, its first bytes checked for an
 * HTML page or a playlist, and a fake image header cut off, as the whole-body path does. Processed
 * bytes go to `write`, awaited, so a slow disk slows the reading.
 */
import { createDecipheriv, type Decipher } from 'node:crypto';
import { type Disguise, detectDisguise } from '../../media/disguise.js';
import { GabeError } from '../../service/errors.js';
import { decryptError } from './key-cache.js';

/** Bytes of a piece looked at before its first byte goes out: a fake image header fits in them. */
export const HEAD_BYTES = 16 * 1024;

export interface StreamPiece {
  /** The piece's bytes in the body (after the skipped ones), or null: the rest of the body. */
  length: number | null;
  decrypt: { key: Buffer; iv: Buffer } | null;
  /** The piece in errors ("video segment 3 (media sequence 3)"). */
  what: string;
}

export interface SegmentStreamOptions {
  pieces: StreamPiece[];
  /** Bytes at the start of the body that belong to no piece. */
  skip: number;
  /** fMP4 never carries a disguise; TS may. */
  fmp4: boolean;
  /** Throws when a piece's first bytes are not media (sniff.ts). */
  check(head: Buffer, piece: number): void;
  /** A fake header was found and cut off. */
  onDisguise(found: Disguise): void;
  write(data: Buffer): Promise<void>;
}

export class SegmentStream {
  /** Bytes written for each piece that is complete. */
  readonly sizes: number[] = [];
  private piece = 0;
  private skip: number;
  /** Bytes of the current piece still to come (Infinity: up to the end of the body). */
  private left = 0;
  private decipher: Decipher | null = null;
  private head: Buffer[] = [];
  private headBytes = 0;
  private headDone = false;
  private written = 0;

  constructor(private readonly o: SegmentStreamOptions) {
    this.skip = o.skip;
    this.start();
  }

  /** Every piece is complete: the rest of the body is not needed. */
  get complete(): boolean {
    return this.piece >= this.o.pieces.length;
  }

  private start(): void {
    const p = this.o.pieces[this.piece];
    if (!p) return;
    this.left = p.length ?? Number.POSITIVE_INFINITY;
    this.decipher = null;
    if (p.decrypt) {
      try {
        this.decipher = createDecipheriv('aes-128-cbc', p.decrypt.key, p.decrypt.iv);
      } catch (err) {
        throw decryptError(p.what, err);
      }
    }
    this.head = [];
    this.headBytes = 0;
    this.headDone = false;
    this.written = 0;
  }

  /** Takes the next bytes of the body, in order. */
  async push(chunk: Buffer): Promise<void> {
    let data = chunk;
    if (this.skip > 0) {
      const n = Math.min(this.skip, data.length);
      this.skip -= n;
      data = data.subarray(n);
    }
    while (data.length > 0 && !this.complete) {
      const n = Math.min(this.left, data.length);
      const part = data.subarray(0, n);
      data = data.subarray(n);
      this.left -= n;
      await this.emit(this.decipher ? this.decipher.update(part) : part);
      if (this.left === 0) await this.finishPiece();
    }
  }

  /** The body ended: the last piece (the rest of the body) is complete, and every piece must be. */
  async end(): Promise<void> {
    const p = this.o.pieces[this.piece];
    if (p && p.length === null) await this.finishPiece();
    if (!this.complete) {
      throw new GabeError('TRUNCATED', `the body ended inside ${this.o.pieces[this.piece]!.what}`);
    }
  }

  private async emit(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    if (this.headDone) return this.out(data);
    this.head.push(data);
    this.headBytes += data.length;
    if (this.headBytes >= HEAD_BYTES) await this.flushHead();
  }

  private async flushHead(): Promise<void> {
    this.headDone = true;
    let head = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head, this.headBytes);
    this.head = [];
    this.o.check(head, this.piece);
    if (!this.o.fmp4 && head.length > 0 && head[0] !== 0x47) {
      const found = detectDisguise(head);
      if (found) {
        this.o.onDisguise(found);
        head = head.subarray(found.offset);
      }
    }
    await this.out(head);
  }

  private async out(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    this.written += data.length;
    await this.o.write(data);
  }

  private async finishPiece(): Promise<void> {
    if (this.decipher) {
      let last: Buffer;
      try {
        last = this.decipher.final();
      } catch (err) {
        throw decryptError(this.o.pieces[this.piece]!.what, err);
      }
      await this.emit(last);
    }
    if (!this.headDone) await this.flushHead();
    this.sizes.push(this.written);
    this.piece++;
    this.start();
  }
}
