/**
 * A real HTTP origin for tests, on 127.0.0.1 and an ephemeral port, with fault injection.
 *
 * Why a real server and not a mocked HTTP layer: the downloader's retries, timeouts, Range resumption
 * and socket handling only run for real against real sockets (see GUIDE.md, "what we avoid").
 *
 * ```ts
 * const origin = await startOrigin({ root: fixture.dir, seed: 42 });
 * origin.url                                    // 'http://127.0.0.1:PORT'
 * origin.serveDir('/vod/', dir)                 // GET /vod/a/b.ts -> dir/a/b.ts (longest prefix wins)
 * origin.addFile('/x.mp4', '/abs/file.mp4')     // one file at one path
 * origin.route('/live.m3u8', { body: '#EXTM3U\n...' })          // fixed body (Range and faults apply)
 * origin.route('/dyn', (req, res, ctx) => ctx.send(body, { contentType: 'text/plain' }))
 * origin.redirect('/old.m3u8', '/vod/index.m3u8', 301)
 * origin.setOptions({ ranges: false, contentLength: false }) // ignore Range / answer chunked
 * const f = origin.addFault({ match: /seg_001\.ts$/, status: 503, retryAfter: 1, times: 2 });
 * f.hits                                        // how many requests the rule was applied to
 * origin.countRequests(/\.ts$/)                 // requests seen for matching paths
 * origin.reset()                                // clear log, faults and options (keeps routes, files)
 * await origin.close()                          // destroys all sockets, cancels stalls and throttles
 * ```
 *
 * Routing: exact paths (route/addFile/redirect) first, then the longest `serveDir` prefix (`root` is
 * `serveDir('/', root)`). Paths are matched on the decoded pathname, never the query string.
 *
 * Fault rules are checked in insertion order; every rule that matches and fires applies, later rules
 * overriding earlier ones field by field, so `{ match: /./, latencyMs: 50 }` combines with a status rule.
 * `times: n` fires on the first n matching requests only; `skip: n` lets the first n through first, so
 * `{ status: 503, times: 1 }, { truncate: { bytes: 10 }, skip: 1, times: 1 }` gives 503, short body, ok.
 * `probability: p` draws from a per-rule mulberry32 PRNG seeded from the origin seed and the rule's
 * position, so the same sequence of requests gets the same faults on every run (concurrent requests:
 * arrival order decides). reset() restarts every sequence.
 * Body-shaping faults (truncate, stall with bytes, throttle) apply to files, fixed-body routes and
 * `ctx.send`; a function route that writes `res` itself only gets the faults that act before it.
 */
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RequestInfo {
  method: string;
  /** Decoded pathname, without the query string. */
  path: string;
  /** Raw request target, with the query string. */
  url: string;
  headers: IncomingHttpHeaders;
}

export interface LoggedRequest extends RequestInfo {
  /** Status sent, or 0 while headers are not sent yet / when the socket died before headers. */
  status: number;
  /** Date.now() when the request arrived. */
  at: number;
  /** Indices of the fault rules applied to this request (see FaultHandle.index). */
  faults: number[];
  /** True once the response ended normally; false for resets, truncations and client aborts. */
  completed: boolean;
  /** Date.now() when the response or its connection closed; 0 while it is still open. */
  endedAt: number;
  /** The client's port: requests with different ports came over different connections. */
  remotePort: number;
}

export type Matcher = RegExp | string | ((req: RequestInfo) => boolean);

export interface FaultRule {
  /** RegExp tested on path+query, string = exact pathname, or predicate. Default: every request. */
  match?: Matcher;
  /** Let the first n matching requests through untouched (to chain faults: 503, then truncate, then ok). */
  skip?: number;
  /** Apply to the first n matching requests (after `skip`), then stop. */
  times?: number;
  /** Apply with this probability (0..1), drawn from the seeded PRNG. */
  probability?: number;
  /** Delay before anything is answered. */
  latencyMs?: number;
  /** Answer this status instead of the file (small text/plain body). */
  status?: number;
  /** Retry-After header (seconds or HTTP date) for `status`. */
  retryAfter?: number | string;
  /** Extra response headers for `status` / `html`. */
  headers?: Record<string, string>;
  /** Destroy the socket: before any byte (client sees ECONNRESET) or right after the headers. */
  reset?: 'before-headers' | 'after-headers';
  /** Send headers with the full Content-Length, then only part of the body, then destroy the socket. */
  truncate?: { bytes?: number; fraction?: number };
  /**
   * Stall for `ms` (Infinity = until the client gives up or close()), before the headers when
   * `beforeHeaders`, else after `afterBytes` (or `afterFraction`) of the body (default 0), then go on.
   */
  stall?: { ms: number; beforeHeaders?: boolean; afterBytes?: number; afterFraction?: number };
  /** Pace the body to about this many bytes per second (one response at a time per connection). */
  throttleBytesPerSec?: number;
  /** Answer 200 text/html with this page (true = a generic "access denied" page), like a captive portal. */
  html?: boolean | string;
  /** Ignore Range for matching requests (answer 200 with the full body). */
  ignoreRange?: boolean;
  /** Omit Content-Length for matching requests (chunked transfer encoding). */
  chunked?: boolean;
}

export interface FaultHandle {
  readonly rule: FaultRule;
  /** Position in insertion order since the last reset(); logged in LoggedRequest.faults. */
  readonly index: number;
  /** Requests this rule was applied to. */
  readonly hits: number;
  remove(): void;
}

export interface SendOptions {
  contentType?: string;
  status?: number;
  headers?: Record<string, string>;
}

export interface RouteContext {
  url: URL;
  /** Send a body with Range support and body-shaping faults applied. */
  send(body: Buffer | string, opts?: SendOptions): Promise<void>;
  /** Send a file from disk the way static files are sent. */
  sendFile(absFile: string): Promise<void>;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, ctx: RouteContext) => unknown;
export type StaticBody = { body: Buffer | string } & SendOptions;

export interface OriginOptions {
  /** Serve this folder at '/'. */
  root?: string;
  /** Seed for probability faults (default 1). */
  seed?: number;
  /** Honour Range requests (default true). */
  ranges?: boolean;
  /** Send Content-Length (default true); false = chunked. */
  contentLength?: boolean;
}

export interface Origin {
  readonly url: string;
  readonly port: number;
  readonly requests: LoggedRequest[];
  route(pathname: string, handler: RouteHandler | StaticBody): void;
  addFile(pathname: string, absFile: string): void;
  serveDir(prefix: string, dir: string): void;
  redirect(from: string, to: string, status?: number): void;
  setOptions(opts: Pick<OriginOptions, 'ranges' | 'contentLength'>): void;
  /** Replace all fault rules. */
  faults(...rules: FaultRule[]): FaultHandle[];
  addFault(rule: FaultRule): FaultHandle;
  countRequests(match?: Matcher): number;
  reset(): void;
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.m3u': 'application/vnd.apple.mpegurl',
  '.ts': 'video/mp2t',
  '.m4s': 'video/mp4',
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.aac': 'audio/aac',
  '.key': 'application/octet-stream',
  '.vtt': 'text/vtt; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentTypeFor(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

const DEFAULT_HTML =
  '<!DOCTYPE html>\n<html><head><title>Access denied</title></head>' +
  '<body><h1>Access denied</h1><p>Please sign in to continue.</p></body></html>\n';

/** mulberry32: tiny, fast and good enough to make fault sequences reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function matches(m: Matcher | undefined, info: RequestInfo): boolean {
  if (m === undefined) return true;
  if (typeof m === 'string') return info.path === m;
  if (m instanceof RegExp) {
    m.lastIndex = 0; // a /g or /y regexp keeps state between test() calls
    return m.test(info.url);
  }
  return m(info);
}

type Range = { start: number; end: number } | 'unsatisfiable' | undefined;

/** One `bytes=` range; anything else (multiple ranges, bad syntax) is ignored, which RFC 9110 allows. */
export function parseRange(header: string | undefined, size: number): Range {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined; // invalid: ignore, send 200
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

interface Body {
  size: number;
  /** Stream of [start, end] inclusive. */
  open(start: number, end: number): Readable;
  contentType: string;
  status: number;
  headers: Record<string, string>;
  stats?: Stats;
}

export async function startOrigin(options: OriginOptions = {}): Promise<Origin> {
  const seed = options.seed ?? 1;
  const routes = new Map<string, RouteHandler | StaticBody>();
  const mounts: { prefix: string; dir: string }[] = [];
  const sockets = new Set<Socket>();
  const requests: LoggedRequest[] = [];
  let serving = { ranges: options.ranges ?? true, contentLength: options.contentLength ?? true };
  let rules: { rule: FaultRule; index: number; hits: number; seen: number; rand: () => number }[] = [];
  let nextIndex = 0;
  // One controller per live request, all aborted by close(), so no sleep (latency, stall, throttle)
  // outlives the server. A Set rather than AbortSignal.any() on a shared signal, whose listeners pile up.
  const live = new Set<AbortController>();
  let closed = false;

  const serveDir = (prefix: string, dir: string) => {
    const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
    mounts.push({ prefix: p, dir: path.resolve(dir) });
    mounts.sort((a, b) => b.prefix.length - a.prefix.length);
  };
  if (options.root) serveDir('/', options.root);

  const addFault = (rule: FaultRule): FaultHandle => {
    const index = nextIndex++;
    // Per-rule PRNG: adding a rule does not change the draws of the others.
    const entry = { rule, index, hits: 0, seen: 0, rand: mulberry32(seed * 7919 + index * 104729) };
    rules.push(entry);
    return {
      rule,
      index,
      get hits() {
        return entry.hits;
      },
      remove: () => {
        rules = rules.filter((r) => r !== entry);
      },
    };
  };

  const pickFaults = (info: RequestInfo): { fault: FaultRule; applied: number[] } => {
    const fault: FaultRule = {};
    const applied: number[] = [];
    for (const r of rules) {
      if (!matches(r.rule.match, info)) continue;
      if (++r.seen <= (r.rule.skip ?? 0)) continue;
      if (r.rule.times !== undefined && r.hits >= r.rule.times) continue;
      if (r.rule.probability !== undefined && !(r.rand() < r.rule.probability)) continue;
      r.hits++;
      applied.push(r.index);
      Object.assign(fault, r.rule);
    }
    return { fault, applied };
  };

  const resolveFile = (pathname: string): string | undefined => {
    for (const { prefix, dir } of mounts) {
      if (!pathname.startsWith(prefix)) continue;
      const abs = path.resolve(dir, `.${pathname.slice(prefix.length - 1)}`);
      if (abs === dir || abs.startsWith(dir + path.sep)) return abs; // no escaping the folder with ../
    }
    return undefined;
  };

  const fileBody = async (abs: string): Promise<Body | undefined> => {
    const st = await stat(abs).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return {
      size: st.size,
      // Streamed from disk so multi-megabyte fixtures never sit in memory.
      open: (start, end) => createReadStream(abs, { start, end, highWaterMark: 64 * 1024 }),
      contentType: contentTypeFor(abs),
      status: 200,
      headers: {
        'Last-Modified': st.mtime.toUTCString(),
        ETag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
      },
      stats: st,
    };
  };

  const bufferBody = (body: Buffer | string, opts: SendOptions = {}): Body => {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    return {
      size: buf.length,
      open: (start, end) => Readable.from([buf.subarray(start, end + 1)]),
      contentType: opts.contentType ?? 'application/octet-stream',
      status: opts.status ?? 200,
      headers: opts.headers ?? {},
    };
  };

  /** Sleep that close() or the client going away cuts short; false means "stop, nobody is listening". */
  const wait = async (ms: number, signal: AbortSignal): Promise<boolean> => {
    if (signal.aborted) return false;
    if (ms <= 0) return true;
    if (!Number.isFinite(ms)) {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      return false;
    }
    try {
      await sleep(ms, undefined, { signal });
      return true;
    } catch {
      return false;
    }
  };

  /**
   * Cut the connection after what was written so far. socket.end() (FIN) rather than destroy():
   * destroy() can drop bytes still queued in Node, so the client might not get the promised headers
   * or partial body; end() flushes them first. The client still sees a body shorter than announced.
   */
  const cut = (res: ServerResponse) => {
    res.flushHeaders(); // writeHead() only stores the headers; this puts them on the socket
    res.socket?.end();
  };

  const drained = (res: ServerResponse) =>
    new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done).off('close', done);
        resolve();
      };
      res.on('drain', done).on('close', done);
    });

  const sendBody = async (
    req: IncomingMessage,
    res: ServerResponse,
    body: Body,
    fault: FaultRule,
    signal: AbortSignal,
  ): Promise<void> => {
    const ranges = serving.ranges && !fault.ignoreRange && body.status === 200;
    const ifRange = req.headers['if-range'];
    const rangeOk =
      ifRange === undefined || ifRange === body.headers.ETag || ifRange === body.headers['Last-Modified'];
    const range = ranges && rangeOk ? parseRange(req.headers.range, body.size) : undefined;
    const headers: Record<string, string | number> = { 'Content-Type': body.contentType, ...body.headers };
    if (ranges) headers['Accept-Ranges'] = 'bytes';
    if (range === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${body.size}`, 'Content-Length': 0 });
      res.end();
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? body.size - 1;
    const length = end - start + 1;
    if (range) headers['Content-Range'] = `bytes ${start}-${end}/${body.size}`;
    // Chunked is what Node does when neither Content-Length nor Transfer-Encoding is set.
    if (serving.contentLength && !fault.chunked) headers['Content-Length'] = length;
    res.writeHead(range ? 206 : body.status, headers);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    const frac = (f: number | undefined) => (f === undefined ? undefined : Math.floor(length * f));
    const limit = fault.truncate ? (fault.truncate.bytes ?? frac(fault.truncate.fraction) ?? 0) : undefined;
    const stall = fault.stall && !fault.stall.beforeHeaders ? fault.stall : undefined;
    let stallAt = stall ? (stall.afterBytes ?? frac(stall.afterFraction) ?? 0) : undefined;
    const rate = fault.throttleBytesPerSec;
    // ~20 writes per second keeps the pacing smooth without flooding the event loop.
    const step = rate ? Math.max(1, Math.floor(rate / 20)) : Number.POSITIVE_INFINITY;
    const source = body.open(start, end);
    const began = Date.now();
    let sent = 0;
    try {
      if (stallAt === 0 || limit === 0) res.flushHeaders();
      for await (const piece of source) {
        let chunk = piece as Buffer;
        while (chunk.length > 0 || stallAt === sent || limit === sent) {
          if (signal.aborted || res.destroyed) return;
          if (limit !== undefined && sent >= limit) {
            cut(res);
            return;
          }
          if (stallAt !== undefined && sent >= stallAt) {
            stallAt = undefined;
            if (!(await wait(stall?.ms ?? 0, signal))) return;
            continue;
          }
          let n = Math.min(chunk.length, step);
          if (limit !== undefined) n = Math.min(n, limit - sent);
          if (stallAt !== undefined) n = Math.min(n, stallAt - sent);
          const out = chunk.subarray(0, n);
          chunk = chunk.subarray(n);
          sent += n;
          if (!res.write(out)) await drained(res);
          if (rate) {
            const due = began + (sent / rate) * 1000;
            if (!(await wait(due - Date.now(), signal))) return;
          }
        }
      }
      if (limit !== undefined && sent >= limit) return cut(res);
      res.end();
    } finally {
      source.destroy();
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      pathname = url.pathname;
    }
    const info: RequestInfo = {
      method: req.method ?? 'GET',
      path: pathname,
      url: req.url ?? '/',
      headers: req.headers,
    };
    const { fault, applied } = pickFaults(info);
    const entry: LoggedRequest = {
      ...info,
      status: 0,
      at: Date.now(),
      faults: applied,
      completed: false,
      endedAt: 0,
      remotePort: req.socket.remotePort ?? 0,
    };
    requests.push(entry);
    // Record the status whenever headers go out, including implicit headers from res.write/end.
    const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => ServerResponse;
    res.writeHead = ((...args: unknown[]) => {
      entry.status = args[0] as number;
      return writeHead(...args);
    }) as typeof res.writeHead;
    res.on('finish', () => {
      entry.completed = true;
    });
    // Per-request signal: the client going away, or close(), ends stalls and throttles.
    const aborted = new AbortController();
    live.add(aborted);
    if (closed) aborted.abort();
    res.on('close', () => {
      entry.endedAt = Date.now();
      live.delete(aborted);
      aborted.abort();
    });
    const signal = aborted.signal;

    if (fault.latencyMs && !(await wait(fault.latencyMs, signal))) return;
    if (fault.stall?.beforeHeaders && !(await wait(fault.stall.ms, signal))) return;
    if (fault.reset === 'before-headers') {
      // RST rather than FIN so the client gets ECONNRESET, like a crashed proxy.
      req.socket.resetAndDestroy();
      return;
    }
    if (fault.reset === 'after-headers') {
      // Promise a body that never comes: the client has a status and headers, then the connection ends.
      res.writeHead(fault.status ?? 200, {
        'Content-Type': contentTypeFor(pathname),
        'Content-Length': 1_000_000,
      });
      return cut(res);
    }
    const ctx: RouteContext = {
      url,
      send: (body, opts) => sendBody(req, res, bufferBody(body, opts), fault, signal),
      sendFile: async (abs) => {
        const b = await fileBody(abs);
        if (b) return sendBody(req, res, b, fault, signal);
        return sendBody(
          req,
          res,
          bufferBody('not found\n', { status: 404, contentType: 'text/plain' }),
          {},
          signal,
        );
      },
    };
    if (fault.status !== undefined) {
      const headers: Record<string, string> = { ...fault.headers };
      if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
      const text = `${fault.status} ${http.STATUS_CODES[fault.status] ?? ''}\n`;
      return sendBody(
        req,
        res,
        bufferBody(text, { status: fault.status, contentType: 'text/plain', headers }),
        fault,
        signal,
      );
    }
    if (fault.html) {
      const page = typeof fault.html === 'string' ? fault.html : DEFAULT_HTML;
      const opts = { contentType: 'text/html; charset=utf-8', headers: fault.headers };
      return sendBody(req, res, bufferBody(page, opts), fault, signal);
    }
    const route = routes.get(pathname);
    if (typeof route === 'function') return void (await route(req, res, ctx));
    if (route) return ctx.send(route.body, route);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': 0 }).end();
      return;
    }
    const abs = resolveFile(pathname);
    return abs ? ctx.sendFile(abs) : ctx.send('not found\n', { status: 404, contentType: 'text/plain' });
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // A bug in a test route must be visible, not a hung request.
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`origin error: ${err instanceof Error ? err.stack : String(err)}\n`);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    route: (pathname, handler) => void routes.set(pathname, handler),
    addFile: (pathname, absFile) => void routes.set(pathname, (_req, _res, ctx) => ctx.sendFile(absFile)),
    serveDir,
    redirect: (from, to, status = 302) =>
      void routes.set(from, (_req, res) => {
        res.writeHead(status, { Location: to, 'Content-Length': 0 }).end();
      }),
    setOptions: (opts) => {
      serving = { ...serving, ...opts };
    },
    faults: (...list) => {
      rules = [];
      return list.map(addFault);
    },
    addFault,
    countRequests: (match) => requests.filter((r) => matches(match, r)).length,
    reset: () => {
      requests.length = 0;
      rules = [];
      nextIndex = 0;
      serving = { ranges: options.ranges ?? true, contentLength: options.contentLength ?? true };
    },
    close: async () => {
      closed = true;
      for (const c of live) c.abort();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await done;
    },
  };
}
