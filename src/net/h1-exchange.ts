/**
 * One HTTP/1.1 exchange on a connection of H1Transport (h1.ts): the parser of the response as its
 * bytes come out of the shared read buffer (RFC 9112: status line, header fields, then a body framed
 * by chunked coding, Content-Length or the end of the connection), and the body handed to the reader.
 */
import type { Socket } from 'node:net';
import { DUMP_LIMIT, type HttpBody, type RawResponse } from './native.js';

/** Longest status line plus header section accepted (Node's default is 16 KB). */
const MAX_HEAD = 64 * 1024;
/** Bytes an iterated body holds for a reader that is behind before the socket stops being read. */
const ITERATE_HIGH_WATER = 256 * 1024;
/** Bodies larger than this are not read to the end to save a connection (dump). */
const CRLFCRLF = Buffer.from('\r\n\r\n');

export function codeError(message: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return Object.assign(new Error('the request was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

/** One connection; `exchange` is the request on it, if any. */
export interface Conn {
  key: string;
  socket: Socket;
  exchange: Exchange | null;
  /** It has carried a response before (a failure before any byte may be a stale keep-alive). */
  used: boolean;
  dead: boolean;
}

type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/** The body of a response: collected whole, or iterated, as the reader asks; bytes before that wait. */
class Body implements HttpBody, AsyncIterable<Buffer> {
  /** Copies of what arrived before the reader chose how to read. */
  private early: Buffer[] = [];
  private target: Buffer | null = null;
  private filled = 0;
  private mode: 'undecided' | 'collect' | 'iterate' = 'undecided';
  private done = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private discard = false;
  private limit = Number.POSITIVE_INFINITY;
  /** Bytes in `early`; the socket is paused while an iterating reader leaves too many there. */
  private earlyBytes = 0;
  private paused = false;

  constructor(
    private readonly exchange: Exchange,
    readonly length: number | null,
  ) {}

  /** Bytes of the body from the shared read buffer: copied, as the buffer is reused at once. */
  push(src: Buffer, start: number, end: number): void {
    if (this.discard) return;
    const n = end - start;
    if (this.mode === 'collect' && this.target && this.filled + n <= this.target.length) {
      src.copy(this.target, this.filled, start, end);
      this.filled += n;
      return;
    }
    this.early.push(Buffer.from(src.subarray(start, end)));
    this.filled += n;
    this.earlyBytes += n;
    // A reader iterating behind the socket: stop reading it (TCP flow control holds the sender).
    if (this.mode === 'iterate' && this.earlyBytes >= ITERATE_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.exchange.conn.socket.pause();
    }
    if (this.filled > this.limit) {
      this.exchange.fail(
        codeError(`the body is larger than ${this.limit} bytes`, 'ERR_BODY_TOO_LARGE'),
        true,
      );
      return;
    }
    this.wake?.();
  }

  finish(error: Error | null): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    // The whole body is in: the connection reads again before it is reused.
    this.unpause();
    this.wake?.();
  }

  private unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.exchange.conn.socket.resume();
  }

  /**
   * The whole body: one buffer, allocated once, when the length is known; else the pieces as they
   * came. More than `limit` bytes fail the read.
   */
  async collect(limit: number, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Promise<Buffer[]> {
    this.mode = 'collect';
    this.limit = limit;
    if (this.filled > limit) {
      this.exchange.fail(codeError(`the body is larger than ${limit} bytes`, 'ERR_BODY_TOO_LARGE'), true);
    }
    if (this.length !== null && this.length > 0) {
      const target = alloc(this.length);
      let at = 0;
      for (const b of this.early) {
        b.copy(target, at);
        at += b.length;
      }
      this.early = [];
      this.target = target;
      this.filled = at;
    }
    await this.until(() => this.done);
    if (this.error) throw this.error;
    if (this.target) return [this.target.subarray(0, this.filled)];
    return this.early;
  }

  private until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.wake = () => {
        if (!ready()) return;
        this.wake = null;
        resolve();
      };
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    this.mode = 'iterate';
    for (;;) {
      await this.until(() => this.early.length > 0 || this.done);
      while (this.early.length > 0) {
        const chunk = this.early.shift()!;
        this.earlyBytes -= chunk.length;
        if (this.early.length === 0) this.unpause();
        yield chunk;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
    }
  }

  destroy(error?: Error): void {
    this.exchange.fail(error ?? codeError('the response body was destroyed', 'ERR_STREAM_DESTROYED'), true);
  }

  async dump(): Promise<void> {
    if (this.done) return;
    if (!(this.length !== null && this.length <= DUMP_LIMIT)) {
      this.exchange.fail(codeError('body not read', 'ERR_STREAM_DESTROYED'), true);
      return;
    }
    this.discard = true;
    this.early = [];
    await this.until(() => this.done);
  }
}

/** One request and its response on a connection: the parser of what comes back. */
export class Exchange {
  private head: Buffer | null = null;
  private framing: Framing | null = null;
  private keepAlive = true;
  private body: Body | null = null;
  /** Chunked framing: the size line or the CRLF after a chunk being read, and bytes left in a chunk. */
  private chunkLine = '';
  private chunkLeft = 0;
  private chunkState: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  private gotBytes = false;
  private settled = false;

  constructor(
    readonly conn: Conn,
    private readonly method: string,
    private readonly resolve: (res: RawResponse) => void,
    private readonly reject: (err: Error, retry: boolean) => void,
    private readonly release: (conn: Conn, reusable: boolean) => void,
  ) {}

  onData(buf: Buffer, n: number): void {
    this.gotBytes = true;
    let at = 0;
    while (at < n && !this.bodyDone)
      at = this.framing ? this.readBody(buf, at, n) : this.readHead(buf, at, n);
    if (this.ended) {
      this.ended = false;
      // Bytes after the response were not asked for: such a connection is not reused.
      this.release(this.conn, this.keepAlive && at === n);
    }
  }

  private bodyDone = false;
  /** The response ended within the read being parsed: the connection is released after it. */
  private ended = false;

  private readHead(buf: Buffer, at: number, n: number): number {
    const piece = buf.subarray(at, n);
    const prev = this.head?.length ?? 0;
    const head = this.head ? Buffer.concat([this.head, piece]) : Buffer.from(piece);
    const end = head.indexOf(CRLFCRLF, Math.max(0, prev - 3));
    if (end < 0) {
      if (head.length > MAX_HEAD)
        this.fail(codeError('response header section too large', 'HPE_HEADER_OVERFLOW'));
      this.head = head;
      return n;
    }
    this.head = null;
    const consumed = end + 4 - prev;
    const lines = head.toString('latin1', 0, end).split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
    if (!m) {
      this.fail(
        codeError(
          `not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`,
          'HPE_INVALID_CONSTANT',
        ),
      );
      return n;
    }
    const status = Number(m[2]);
    const headers: Record<string, string | string[]> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const had = headers[name];
      if (name === 'set-cookie') headers[name] = [...((had as string[] | undefined) ?? []), value];
      else headers[name] = had === undefined ? value : `${had}, ${value}`;
    }
    if (status >= 100 && status < 200) return at + consumed; // 1xx: the real response follows
    const connection = String(headers['connection'] ?? '').toLowerCase();
    this.keepAlive = m[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    const te = String(headers['transfer-encoding'] ?? '').toLowerCase();
    const cl = headers['content-length'];
    let length: number | null = null;
    if (this.method === 'HEAD' || status === 204 || status === 304) this.framing = { kind: 'none' };
    else if (te.includes('chunked')) this.framing = { kind: 'chunked' };
    else if (typeof cl === 'string' && /^\d+$/.test(cl)) {
      length = Number(cl);
      this.framing = { kind: 'length', left: length };
    } else if (cl !== undefined) {
      this.fail(codeError(`invalid Content-Length ${JSON.stringify(cl)}`, 'HPE_INVALID_CONTENT_LENGTH'));
      return n;
    } else {
      this.framing = { kind: 'close' };
      this.keepAlive = false;
    }
    this.body = new Body(this, this.framing.kind === 'none' ? 0 : length);
    this.settled = true;
    this.resolve({ statusCode: status, headers, body: this.body });
    if (this.framing.kind === 'none' || (this.framing.kind === 'length' && this.framing.left === 0))
      this.end();
    return at + consumed;
  }

  private readBody(buf: Buffer, at: number, n: number): number {
    const f = this.framing!;
    const body = this.body!;
    if (f.kind === 'close') {
      body.push(buf, at, n);
      return n;
    }
    if (f.kind === 'length') {
      const take = Math.min(f.left, n - at);
      body.push(buf, at, at + take);
      f.left -= take;
      if (f.left === 0) this.end();
      return at + take;
    }
    // chunked (RFC 9112 7.1): size [; ext] CRLF data CRLF ... 0 CRLF [trailers] CRLF
    while (at < n && !this.bodyDone) {
      if (this.chunkState === 'data') {
        const take = Math.min(this.chunkLeft, n - at);
        body.push(buf, at, at + take);
        this.chunkLeft -= take;
        at += take;
        if (this.chunkLeft === 0) this.chunkState = 'crlf';
        continue;
      }
      const nl = buf.indexOf(0x0a, at);
      const stop = nl < 0 || nl >= n ? n : nl + 1;
      this.chunkLine += buf.toString('latin1', at, stop);
      at = stop;
      if (!this.chunkLine.endsWith('\n')) {
        if (this.chunkLine.length > 4096)
          this.fail(codeError('chunk size line too long', 'HPE_INVALID_CHUNK_SIZE'));
        continue;
      }
      const line = this.chunkLine.trim();
      this.chunkLine = '';
      if (this.chunkState === 'crlf') {
        this.chunkState = 'size';
        if (line !== '') this.fail(codeError('no CRLF after a chunk', 'HPE_INVALID_CHUNK_SIZE'));
      } else if (this.chunkState === 'trailer') {
        if (line === '') this.end();
      } else {
        const size = Number.parseInt(line.split(';')[0] ?? '', 16);
        if (!/^[0-9a-fA-F]+/.test(line) || !Number.isFinite(size)) {
          this.fail(
            codeError(`invalid chunk size ${JSON.stringify(line.slice(0, 40))}`, 'HPE_INVALID_CHUNK_SIZE'),
          );
        } else if (size === 0) this.chunkState = 'trailer';
        else {
          this.chunkLeft = size;
          this.chunkState = 'data';
        }
      }
    }
    return at;
  }

  private end(): void {
    if (this.bodyDone) return;
    this.bodyDone = true;
    this.body?.finish(null);
    this.ended = true;
  }

  /** The connection ended (cleanly or not). */
  onClose(err: Error | null): void {
    if (this.framing?.kind === 'close' && !err) {
      this.bodyDone = true;
      this.body?.finish(null);
      this.release(this.conn, false);
      return;
    }
    if (this.bodyDone) return;
    const e =
      err ??
      codeError(
        this.settled ? 'the connection closed before the end of the body' : 'socket hang up',
        'ECONNRESET',
      );
    // Nothing of the response came on a connection used before: the server closed it while idle.
    this.fail(e, false, !this.gotBytes && this.conn.used);
  }

  fail(err: Error, destroySocket = true, retry = false): void {
    if (this.bodyDone) return;
    this.bodyDone = true;
    if (this.settled) this.body?.finish(err);
    else this.reject(err, retry);
    this.release(this.conn, false);
    if (destroySocket) this.conn.socket.destroy();
  }
}
