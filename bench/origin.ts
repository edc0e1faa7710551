/**
 * The benchmark's origin: a static file server over a folder with what a real CDN edge has and a
 * loopback socket lacks, namely time to first byte and a bandwidth ceiling per connection.
 *
 * - `--latency-ms` (default 30): every request waits this long before its response headers go out.
 * - `--rate-mbit` (default 50): a token bucket per TCP connection (kept across keep-alive requests)
 *   caps each connection at this many megabits per second. Opening more connections gets more
 *   bandwidth, as with a CDN that limits per flow; that is what segment concurrency and aria2c -x buy.
 * - Range requests (single range), HEAD, keep-alive, files streamed from disk.
 * - `GET /__stats` answers request, connection and byte counts; `?reset=1` zeroes them afterwards.
 *
 * Self-contained on purpose (no imports from src/ or test/), so the numbers never depend on the code
 * under test. Run standalone: `node --import tsx bench/origin.ts --root DIR [--port 0]`; it prints
 * one JSON line `{"port": N}` on stdout once listening.
 */
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export interface OriginOptions {
  root: string;
  host?: string;
  port?: number;
  latencyMs?: number;
  /** Megabits per second per connection; 0 = unlimited. */
  rateMbit?: number;
}

export interface OriginStats {
  requests: number;
  connections: number;
  bytes: number;
  /** Most requests open at once. */
  max_in_flight: number;
  /** Sum over requests of arrival → last byte, ms: divided by the run's wall time, the mean concurrency. */
  request_ms: number;
}

const zero = (): OriginStats => ({ requests: 0, connections: 0, bytes: 0, max_in_flight: 0, request_ms: 0 });

const TYPES: Record<string, string> = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.ts': 'video/mp2t',
  '.mp4': 'video/mp4',
  '.m4s': 'video/iso.segment',
  '.aac': 'audio/aac',
  '.key': 'application/octet-stream',
};

/** Bytes read from disk per chunk; the throttle sleeps between chunks. */
const CHUNK = 64 * 1024;

/**
 * A per-connection token bucket. Tokens may go negative (a whole chunk is sent at once); the sender
 * then sleeps until the debt is repaid, so the long-run rate is exact and a burst is at most one
 * chunk plus `burst` bytes.
 */
class Bucket {
  private tokens: number;
  private last = performance.now();
  constructor(
    private readonly bytesPerMs: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes `n` bytes' worth of tokens; returns how long to wait (ms) before sending more. */
  take(n: number): number {
    const t = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) * this.bytesPerMs);
    this.last = t;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : -this.tokens / this.bytesPerMs;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves on 'drain' or 'close', whichever comes first, and leaves no listener behind. */
function drained(res: http.ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` → inclusive [start, end]; null = not satisfiable; undefined = ignore. */
export function parseRange(header: string | undefined, size: number): [number, number] | null | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // multi-range or junk: send the whole file
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return null;
  return [start, end];
}

export interface Origin {
  url: string;
  port: number;
  stats(reset?: boolean): OriginStats;
  close(): Promise<void>;
}

export async function startOrigin(options: OriginOptions): Promise<Origin> {
  const root = path.resolve(options.root);
  const latencyMs = options.latencyMs ?? 30;
  const rateMbit = options.rateMbit ?? 50;
  const bytesPerMs = rateMbit > 0 ? (rateMbit * 1e6) / 8 / 1000 : 0;
  const buckets = new WeakMap<Socket, Bucket>();
  const counters: OriginStats = zero();
  let inFlight = 0;
  const sockets = new Set<Socket>();
  /** Connections that carried at least one request other than /__stats. */
  const counted = new WeakSet<Socket>();

  const bucketOf = (socket: Socket): Bucket | null => {
    if (bytesPerMs === 0) return null;
    let b = buckets.get(socket);
    if (!b) {
      b = new Bucket(bytesPerMs, CHUNK);
      buckets.set(socket, b);
    }
    return b;
  };

  /** Streams [start, end] of the file, one chunk at a time, honouring back-pressure and the bucket. */
  const sendFile = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    file: string,
    start: number,
    end: number,
  ) => {
    const bucket = bucketOf(req.socket);
    const stream = createReadStream(file, { start, end, highWaterMark: CHUNK });
    let aborted = false;
    res.once('close', () => {
      aborted = true;
      stream.destroy();
    });
    try {
      for await (const chunk of stream) {
        if (aborted) break;
        const b = chunk as Buffer;
        counters.bytes += b.length;
        const ok = res.write(b);
        const wait = bucket ? bucket.take(b.length) : 0;
        if (!ok) await drained(res);
        if (wait >= 1) await sleep(wait);
      }
    } finally {
      stream.destroy();
    }
    if (!aborted) res.end();
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    if (url.pathname === '/__stats') {
      const body = JSON.stringify(counters);
      if (url.searchParams.has('reset')) Object.assign(counters, zero());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    counters.requests++;
    const arrived = performance.now();
    inFlight++;
    counters.max_in_flight = Math.max(counters.max_in_flight, inFlight);
    res.once('close', () => {
      inFlight--;
      counters.request_ms += performance.now() - arrived;
    });
    if (!counted.has(req.socket)) {
      counted.add(req.socket);
      counters.connections++;
    }
    if (latencyMs > 0) await sleep(latencyMs);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
      return;
    }
    const file = path.join(root, decodeURIComponent(url.pathname));
    const rel = path.relative(root, file);
    let st: Stats | null = null;
    if (!rel.startsWith('..') && !path.isAbsolute(rel)) st = await stat(file).catch(() => null);
    if (!st?.isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 }).end('not found\n');
      return;
    }
    const headers: http.OutgoingHttpHeaders = {
      'content-type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'accept-ranges': 'bytes',
      'last-modified': st.mtime.toUTCString(),
      etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
    };
    const range = parseRange(req.headers.range, st.size);
    if (range === null) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${st.size}`, 'content-length': 0 }).end();
      return;
    }
    const [start, end] = range ?? [0, st.size - 1];
    headers['content-length'] = end - start + 1;
    if (range) headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || st.size === 0) {
      res.end();
      return;
    }
    await sendFile(req, res, file, start, end);
  };

  const server = http.createServer(
    { keepAliveTimeout: 30_000, requestTimeout: 0, headersTimeout: 60_000 },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
    },
  );
  server.maxConnections = 4096;
  server.on('connection', (socket: Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    stats(reset = false) {
      const out = { ...counters };
      if (reset) Object.assign(counters, zero());
      return out;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'latency-ms': { type: 'string', default: '30' },
      'rate-mbit': { type: 'string', default: '50' },
    },
  });
  if (!values.root) {
    process.stderr.write('usage: origin.ts --root DIR [--port 0] [--latency-ms 30] [--rate-mbit 50]\n');
    process.exit(2);
  }
  const origin = await startOrigin({
    root: values.root,
    host: values.host,
    port: Number(values.port),
    latencyMs: Number(values['latency-ms']),
    rateMbit: Number(values['rate-mbit']),
  });
  process.stdout.write(`${JSON.stringify({ port: origin.port, url: origin.url })}\n`);
  const stop = () => void origin.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`origin: ${String(err)}\n`);
    process.exit(1);
  });
}
