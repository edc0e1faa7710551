/**
 * Proxied requests (config or job `proxy`): undici's ProxyAgent for http(s) proxies, fetch-socks for
 * SOCKS5. Loaded on demand by net/http.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { socksDispatcher } from 'fetch-socks';
import { type Dispatcher, ProxyAgent, request } from 'undici';
import { GabeError } from '../errors.js';
import type { HttpClientOptions, Transport } from './http.js';
import type { RawRequest, RawResponse } from './native.js';

class UndiciTransport implements Transport {
  constructor(private readonly dispatcher: Dispatcher) {}

  async request(url: URL, req: RawRequest): Promise<RawResponse> {
    const res = await request(url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      dispatcher: this.dispatcher,
      signal: req.signal,
    });
    return { statusCode: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body };
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => {});
  }

  async destroy(): Promise<void> {
    await this.dispatcher.destroy().catch(() => {});
  }
}

/** undici dispatchers for proxied requests: an HTTP(S) proxy, or SOCKS5 through fetch-socks. */
function makeDispatcher(options: HttpClientOptions & { proxy: string }): Dispatcher {
  const common = {
    connections: options.connections ?? 16,
    keepAliveTimeout: 30_000,
    connect: { timeout: options.timeoutMs },
    headersTimeout: options.timeoutMs,
    // undici's bodyTimeout is the longest gap between two body chunks: a stalled transfer fails
    // after connection_timeout instead of hanging forever.
    bodyTimeout: options.timeoutMs,
  };
  const proxy = options.proxy;
  let u: URL;
  try {
    u = new URL(proxy);
  } catch {
    throw new GabeError('PROXY', `proxy "${proxy}" is not a URL`);
  }
  if (u.protocol === 'http:' || u.protocol === 'https:') return new ProxyAgent({ ...common, uri: proxy });
  if (u.protocol === 'socks5:' || u.protocol === 'socks5h:') {
    return socksDispatcher(
      {
        type: 5,
        host: u.hostname,
        port: Number(u.port || 1080),
        ...(u.username ? { userId: decodeURIComponent(u.username) } : {}),
        ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      },
      { ...common, connect: { timeout: options.timeoutMs } },
    );
  }
  throw new GabeError('PROXY', `proxy scheme ${u.protocol} is not supported (use http, https or socks5)`);
}

export function proxyTransport(options: HttpClientOptions & { proxy: string }): Transport {
  return new UndiciTransport(makeDispatcher(options));
}
