/**
 * Proxied requests (config or job `proxy`): undici's ProxyAgent for http(s) proxies, fetch-socks for
 * SOCKS5. Loaded on demand by net/client.ts. How the proxy itself is connected to, and guarded, is
 * proxy-connect.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, type Dispatcher, ProxyAgent, request } from 'undici';
import { GabeError } from '../../service/errors.js';
import type { HttpClientOptions } from '../client-options.js';
import { TransferWatch } from '../deadlines.js';
import { redactCredentials } from '../redact.js';
import { undiciAgentLimits, withLimits } from '../undici-limits.js';
import { httpProxyConnect, socksConnect } from './proxy-connect.js';
import type { RawRequest, RawResponse, Transport } from './transport.js';

class ProxiedTransport implements Transport {
  private readonly dispatcher: Dispatcher;

  constructor(
    private readonly base: Dispatcher,
    watches: TransferWatch,
  ) {
    this.dispatcher = withLimits(base, watches);
  }

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
    await this.base.close().catch(() => {});
  }

  async destroy(): Promise<void> {
    await this.base.destroy().catch(() => {});
  }
}

/** undici dispatchers for proxied requests: an HTTP(S) proxy, or SOCKS5 through fetch-socks. */
function makeDispatcher(options: HttpClientOptions & { proxy: string }): Dispatcher {
  const common = {
    ...undiciAgentLimits(options.timeoutMs),
    connections: options.connections ?? 16,
    connect: { timeout: options.timeoutMs },
  };
  const proxy = options.proxy;
  let u: URL;
  try {
    u = new URL(proxy);
  } catch {
    throw new GabeError('PROXY', `proxy "${redactCredentials(proxy)}" is not a URL`);
  }
  // A job's own proxy is guarded like any hop; the config's is the operator's (proxy-connect.ts).
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
  return new ProxiedTransport(makeDispatcher(options), new TransferWatch(options));
}
