/**
 * A small HTTP/1.1 client for the requests whose bodies are read whole (segments, playlists, keys):
 * every socket reads into one shared buffer (`onread`), and a body with a Content-Length is copied
 * from there straight into the one buffer it ends up in. Node's client allocates a buffer per read,
 * which at 100 MB/s over 64 connections is thousands of buffers a second: most of a download's
 * garbage collection, and the tens of megabytes of dead chunks that made up its peak RSS.
 *
 * RFC 9112 message framing: a status line and header fields up to an empty line, then a body
 * delimited by Transfer-Encoding: chunked, Content-Length, or the end of the connection (6.3).
 * Connections are kept alive and reused (9.3); one that a server closed while idle is retried once
 * on a new connection when nothing of the response came (9.3.1: GET and HEAD are idempotent).
 * The destination guard is applied as by NativeTransport: the guard's lookup, then the peer address.
 */
import net from 'node:net';
import tls from 'node:tls';
import { guardedLookup, guardPeer, literalRefusal } from './guard.js';
import { abortError, type Conn, Exchange } from './h1-exchange.js';
import type { Transport } from './http.js';
import { type NativeTransportOptions, type RawRequest, type RawResponse, timeoutError } from './native.js';

const READ_BUFFER = 64 * 1024;
/** HTTP/1.1 with sockets that read into one reused buffer; see the file comment. */
export class H1Transport implements Transport {
  private readonly readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  private readonly idle = new Map<string, Conn[]>();
  private readonly open = new Map<string, number>();
  private readonly queue = new Map<string, (() => void)[]>();
  private readonly conns = new Set<Conn>();
  private readonly lookup: net.LookupFunction | undefined;

  constructor(private readonly options: NativeTransportOptions) {
    this.lookup = options.guard ? guardedLookup(options.guard) : undefined;
  }

  async request(url: URL, req: RawRequest): Promise<RawResponse> {
    if (req.method === 'POST') throw new Error('H1Transport sends GET and HEAD only');
    const { guard } = this.options;
    const refused = guard ? literalRefusal(url, guard) : null;
    if (refused) throw refused;
    for (let attempt = 0; ; attempt++) {
      const conn = await this.acquire(url, req.signal);
      try {
        return await this.exchange(conn, url, req);
      } catch (err) {
        const e = err as Error & { retryStale?: boolean };
        if (!e.retryStale || attempt > 0) throw err;
      }
    }
  }

  private key(url: URL): string {
    return `${url.protocol}//${url.host}`;
  }

  private async acquire(url: URL, signal: AbortSignal | undefined): Promise<Conn> {
    const key = this.key(url);
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const idle = this.idle.get(key);
      while (idle && idle.length > 0) {
        const conn = idle.pop()!;
        if (!conn.dead && !conn.socket.destroyed) return conn;
      }
      if ((this.open.get(key) ?? 0) < this.options.connections) return this.connect(url, key);
      await new Promise<void>((resolve) => {
        const waiters = this.queue.get(key) ?? [];
        waiters.push(resolve);
        this.queue.set(key, waiters);
      });
    }
  }

  private connect(url: URL, key: string): Conn {
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const conn: Conn = {
      key,
      socket: null as unknown as net.Socket,
      exchange: null,
      used: false,
      dead: false,
    };
    const onread = {
      buffer: this.readBuffer,
      callback: (n: number, buf: Uint8Array) => {
        const ex = conn.exchange;
        if (ex) ex.onData(buf as Buffer, n);
        else conn.socket.destroy(); // bytes nobody asked for on an idle connection
        return true;
      },
    };
    const base = { host, port, ...(this.lookup ? { lookup: this.lookup } : {}), onread };
    const socket =
      url.protocol === 'https:'
        ? tls.connect({
            ...base,
            servername: net.isIP(host) ? undefined : host,
            ALPNProtocols: ['http/1.1'],
          })
        : net.connect(base);
    conn.socket = socket;
    socket.setNoDelay(true);
    socket.setTimeout(this.options.timeoutMs);
    const guard = this.options.guard;
    if (guard) guardPeer(socket, guard, url.hostname);
    socket.on('timeout', () => {
      socket.destroy(timeoutError(this.options.timeoutMs));
    });
    let error: Error | null = null;
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('close', () => {
      conn.dead = true;
      this.conns.delete(conn);
      this.open.set(key, (this.open.get(key) ?? 1) - 1);
      const idle = this.idle.get(key);
      if (idle)
        this.idle.set(
          key,
          idle.filter((c) => c !== conn),
        );
      const ex = conn.exchange;
      conn.exchange = null;
      ex?.onClose(error);
      this.wakeOne(key);
    });
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
    this.conns.add(conn);
    return conn;
  }

  private wakeOne(key: string): void {
    this.queue.get(key)?.shift()?.();
  }

  private exchange(conn: Conn, url: URL, req: RawRequest): Promise<RawResponse> {
    return new Promise<RawResponse>((resolve, reject) => {
      const signal = req.signal;
      const onAbort = () => ex.fail(abortError(signal!));
      const ex = new Exchange(
        conn,
        req.method,
        resolve,
        (err, retry) => reject(Object.assign(err, retry ? { retryStale: true } : {})),
        (c, reusable) => {
          signal?.removeEventListener('abort', onAbort);
          if (c.exchange !== ex) return;
          c.exchange = null;
          c.used = true;
          if (reusable && !c.dead && !c.socket.destroyed) {
            const idle = this.idle.get(c.key) ?? [];
            idle.push(c);
            this.idle.set(c.key, idle);
            this.wakeOne(c.key);
          } else {
            c.socket.destroy();
          }
        },
      );
      conn.exchange = ex;
      if (signal) {
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
      }
      const lines = [`${req.method} ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
      for (const [name, value] of Object.entries(req.headers)) {
        if (name.toLowerCase() !== 'host' && name.toLowerCase() !== 'connection')
          lines.push(`${name}: ${value}`);
      }
      lines.push('connection: keep-alive', '', '');
      conn.socket.write(lines.join('\r\n'), 'latin1');
    });
  }

  async destroy(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    this.idle.clear();
  }

  async close(): Promise<void> {
    await this.destroy();
  }
}
