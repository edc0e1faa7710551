/**
 * One HTTP/1.1 exchange on a connection of H1Transport (h1-transport.ts): the parser of the response as its
 * bytes come out of the shared read buffer (RFC 9112: status line, header fields, then a body framed
 * by chunked coding, Content-Length or the end of the connection), its bytes handed to the body
 * (response-body.ts).
 */
import type { Socket } from 'node:net';
import {
  interimLimitError,
  MAX_HEAD_BYTES,
  MAX_INTERIM_RESPONSES,
  protocolError,
  trailerOverflowError,
  type Watch,
} from '../deadlines.js';
import { type Framing, fieldsOf, framingOf, HeadReader, keepAliveTimeoutMs, statusOf } from './h1-head.js';
import { ResponseBody } from './response-body.js';
import { codeError, type RawResponse } from './transport.js';

/** One connection; `exchange` is the request on it, if any. */
export interface Conn {
  key: string;
  socket: Socket;
  exchange: Exchange | null;
  /** It has carried a response before (a failure before any byte may be a stale keep-alive). */
  used: boolean;
  dead: boolean;
  /** performance.now() after which an idle connection is not reused (the server's Keep-Alive timeout). */
  reuseUntil: number;
}

/** A body fed from the shared read buffer: what arrives early is copied, as the buffer is reused at once. */
class Body extends ResponseBody {
  constructor(
    private readonly exchange: Exchange,
    length: number | null,
  ) {
    super(length);
  }

  protected keep(src: Buffer, start: number, end: number): Buffer {
    return Buffer.from(src.subarray(start, end));
  }

  protected abort(error: Error): void {
    this.exchange.fail(error, true);
  }

  protected pauseReading(): void {
    this.exchange.conn.socket.pause();
  }

  protected resumeReading(): void {
    this.exchange.conn.socket.resume();
  }
}

/** One request and its response on a connection: the parser of what comes back. */
export class Exchange {
  private readonly heads = new HeadReader();
  private interim = 0;
  private framing: Framing | null = null;
  private keepAlive = true;
  /** `Keep-Alive: timeout=` of the response, ms: how long the server keeps the connection idle. */
  keepAliveMs: number | null = null;
  private body: Body | null = null;
  /** Chunked framing: the size line or the CRLF after a chunk being read, and bytes left in a chunk. */
  private chunkLine = '';
  private chunkLeft = 0;
  private chunkState: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  /** Bytes of the trailer section so far (it shares the head's limit). */
  private trailerBytes = 0;
  private gotBytes = false;
  private settled = false;

  constructor(
    readonly conn: Conn,
    private readonly method: string,
    private readonly watch: Watch,
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
    const found = this.heads.read(buf, at, n);
    if (found === null) return n;
    if (found instanceof Error) return this.failed(found, n);
    const line = statusOf(found.text);
    if (line instanceof Error) return this.failed(line, n);
    const { status } = line;
    if (status === 101) {
      return this.failed(protocolError('101 Switching Protocols to a request that asked for no upgrade'), n);
    }
    if (status < 200) {
      // 1xx: the real response follows (RFC 9110 15.2), but not forever.
      if (++this.interim > MAX_INTERIM_RESPONSES) return this.failed(interimLimitError(), n);
      return found.next;
    }
    const head = { ...line, headers: fieldsOf(found.text) };
    const framed = framingOf(this.method, head);
    if (framed instanceof Error) return this.failed(framed, n);
    this.framing = framed.framing;
    this.keepAlive = framed.keepAlive;
    this.keepAliveMs = keepAliveTimeoutMs(head.headers);
    const body = new Body(this, framed.length);
    this.body = body;
    this.settled = true;
    // The speed floor does not count time the socket stood paused for a reader behind (disk).
    this.watch.body(() => body.held);
    this.resolve({ statusCode: status, headers: head.headers, body: this.body });
    if (this.framing.kind === 'none' || (this.framing.kind === 'length' && this.framing.left === 0))
      this.end();
    return found.next;
  }

  private failed(err: Error, n: number): number {
    this.fail(err);
    return n;
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
      const trailer = this.chunkState === 'trailer';
      if (!this.chunkLine.endsWith('\n')) {
        if (trailer && this.trailerBytes + this.chunkLine.length > MAX_HEAD_BYTES)
          this.fail(trailerOverflowError());
        else if (!trailer && this.chunkLine.length > 4096)
          this.fail(protocolError('chunk size line too long', 'HPE_INVALID_CHUNK_SIZE'));
        continue;
      }
      if (trailer) {
        // Trailer fields are read and dropped; their section shares the head's limit (7.1.2).
        this.trailerBytes += this.chunkLine.length;
        if (this.trailerBytes > MAX_HEAD_BYTES) {
          this.fail(trailerOverflowError());
          continue;
        }
      }
      const line = this.chunkLine.trim();
      this.chunkLine = '';
      if (this.chunkState === 'crlf') {
        this.chunkState = 'size';
        if (line !== '') this.fail(protocolError('no CRLF after a chunk', 'HPE_INVALID_CHUNK_SIZE'));
      } else if (trailer) {
        if (line === '') this.end();
      } else {
        const size = Number.parseInt(line.split(';')[0] ?? '', 16);
        if (!/^[0-9a-fA-F]+/.test(line) || !Number.isFinite(size)) {
          this.fail(
            protocolError(
              `invalid chunk size ${JSON.stringify(line.slice(0, 40))}`,
              'HPE_INVALID_CHUNK_SIZE',
            ),
          );
        } else if (size === 0) {
          this.chunkState = 'trailer';
          this.watch.trailers();
        } else {
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
    this.watch.end();
    this.body?.finish(null);
    this.ended = true;
  }

  /** The connection ended (cleanly or not). */
  onClose(err: Error | null): void {
    if (this.framing?.kind === 'close' && !err) {
      this.bodyDone = true;
      this.watch.end();
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
    this.watch.end();
    if (this.settled) this.body?.finish(err);
    else this.reject(err, retry);
    this.release(this.conn, false);
    if (destroySocket) this.conn.socket.destroy();
  }
}
