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
import { idleTimeoutError, TransferWatch } from '../deadlines.js';
import { guardedLookup, guardPeer, literalRefusal } from '../guard.js';
import { type Conn, Exchange } from './h1-exchange.js';
import {
  abortError,
  type DirectTransportOptions,
  type RawRequest,
  type RawResponse,
  type Transport,
} from './transport.js';

const READ_BUFFER = 64 * 1024;
/**
 * A server's `Keep-Alive: timeout=N` is when it closes an idle connection; a request sent just before
 * that crosses the close. Reuse stops this much earlier (half of N when N is short).
 */
const KEEP_ALIVE_MARGIN_MS = 1000;

/** A request waiting for a connection of its origin. */
interface Waiter {
  wake: () => void;
}
/** HTTP/1.1 with sockets that read into one reused buffer; see the file comment. */
export class H1Transport implements Transport {
  private readonly readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  private readonly idle = new Map<string, Conn[]>();
  private readonly open = new Map<string, number>();
  private readonly queue = new Map<string, Waiter[]>();
  private readonly conns = new Set<Conn>();
  private readonly lookup: net.LookupFunction | undefined;
  private readonly watch: TransferWatch;

  constructor(private readonly options: DirectTransportOptions) {
    this.lookup = options.guard ? guardedLookup(options.guard) : undefined;
    this.watch = new TransferWatch(options);
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
    for (let woken = false; ; woken = true) {
      if (signal?.aborted) {
        // Aborted between its wake-up and now: the wake-up goes on to the next waiter.
        if (woken) this.wakeOne(key);
        throw abortError(signal);
      }
      const idle = this.idle.get(key);
      const now = performance.now();
      while (idle && idle.length > 0) {
        const conn = idle.pop()!;
        if (!conn.dead && !conn.socket.destroyed && now < conn.reuseUntil) return conn;
        // Past the server's Keep-Alive timeout: it may be closing it right now.
        if (!conn.dead) conn.socket.destroy();
      }
      if ((this.open.get(key) ?? 0) < this.options.connections) return this.connect(url, key);
      await this.wait(key, signal);
    }
  }

  /**
   * Waits for a connection of `key` to be released or closed. An abort takes the waiter out of the
   * queue, so a later wake-up goes to a request that still wants it.
   */
  private wait(key: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiters = this.queue.get(key) ?? [];
      this.queue.set(key, waiters);
      const onAbort = () => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        reject(abortError(signal!));
      };
      const waiter: Waiter = {
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
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
      reuseUntil: Number.POSITIVE_INFINITY,
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
      socket.destroy(idleTimeoutError(this.options.timeoutMs));
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
    this.queue.get(key)?.shift()?.wake();
  }

  private exchange(conn: Conn, url: URL, req: RawRequest): Promise<RawResponse> {
    return new Promise<RawResponse>((resolve, reject) => {
      const signal = req.signal;
      const onAbort = () => ex.fail(abortError(signal!));
      const socket = conn.socket;
      const watch = this.watch.watch(
        () => socket.bytesRead,
        (err) => ex.fail(err),
        // A paused socket (its body's reader is behind) must not time out as idle.
        () => socket.setTimeout(this.options.timeoutMs),
      );
      const ex = new Exchange(
        conn,
        req.method,
        watch,
        resolve,
        (err, retry) => reject(Object.assign(err, retry ? { retryStale: true } : {})),
        (c, reusable) => {
          signal?.removeEventListener('abort', onAbort);
          if (c.exchange !== ex) return;
          c.exchange = null;
          c.used = true;
          if (reusable && !c.dead && !c.socket.destroyed) {
            const ms = ex.keepAliveMs;
            c.reuseUntil =
              ms === null
                ? Number.POSITIVE_INFINITY
                : performance.now() + ms - Math.min(KEEP_ALIVE_MARGIN_MS, ms / 2);
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
      // The head deadline runs from the request going out; connecting has the idle timeout.
      if (socket.connecting) socket.once('connect', () => watch.head());
      else watch.head();
      socket.write(lines.join('\r\n'), 'latin1');
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
