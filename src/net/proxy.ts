/**
 * Proxied requests (config or job `proxy`): undici's ProxyAgent for http(s) proxies, fetch-socks for
 * SOCKS5. Loaded on demand by net/http.ts. How the proxy itself is connected to, and guarded, is
 * net/proxy-connect.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, type Dispatcher, ProxyAgent, request } from 'undici';
import { GabeError } from '../errors.js';
import type { HttpClientOptions, Transport } from './http.js';
import type { RawRequest, RawResponse } from './native.js';
import { httpProxyConnect, socksConnect } from './proxy-connect.js';
import { redactCredentials } from './redact.js';

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
    throw new GabeError('PROXY', `proxy "${redactCredentials(proxy)}" is not a URL`);
  }
  // A job's own proxy is guarded like any hop; the config's is the operator's (net/proxy-connect.ts).
  const guard = options.allowPrivateNetworks || options.proxyFrom === 'config' ? null : (options.guard ?? {});
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    return new ProxyAgent({ ...common, uri: proxy, ...httpProxyConnect(u, guard, options.timeoutMs) });
  }
  if (u.protocol === 'socks5:' || u.protocol === 'socks5h:') {
    return new Agent({ ...common, connect: socksConnect(u, guard, options.timeoutMs) });
  }
  throw new GabeError('PROXY', `proxy scheme ${u.protocol} is not supported (use http, https or socks5)`);
}

export function proxyTransport(options: HttpClientOptions & { proxy: string }): Transport {
  return new UndiciTransport(makeDispatcher(options));
}
