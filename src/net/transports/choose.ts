/**
 * Which transport carries a job's requests. Direct connections: node:http for streamed bodies
 * (node-transport.ts) and the own HTTP/1.1 client for bodies read whole (h1-transport.ts), the pair
 * measured fastest (docs/architecture.md, "HTTP stack"). Proxied ones: undici's ProxyAgent or SOCKS5
 * (proxy-transport.ts), loaded on demand.
 *
 * GABE_HTTP_TRANSPORT=undici is a bench-only switch, read here and nowhere else: every direct request
 * goes through undici (undici-transport.ts) instead, so `npm run bench -- --tools gabe-cli,gabe-cli-undici`
 * compares the two stacks on the same download. It is not configuration and not documented for users.
 */
import type { HttpClientOptions } from '../client-options.js';
import { H1Transport } from './h1-transport.js';
import { NativeTransport } from './node-transport.js';
import type { DirectTransportOptions, Transport } from './transport.js';

export function directOptions(options: HttpClientOptions): DirectTransportOptions {
  return {
    timeoutMs: options.timeoutMs,
    lowSpeedLimit: options.lowSpeedLimit,
    lowSpeedTimeMs: options.lowSpeedTimeMs,
    connections: options.connections ?? 16,
    guard: options.allowPrivateNetworks ? null : (options.guard ?? {}),
  };
}

/** A transport whose module loads on first use: undici's is parsed only by the runs that need it. */
function lazy(load: () => Promise<Transport>): Transport {
  const loading = load();
  loading.catch(() => {});
  return {
    request: async (url, req) => (await loading).request(url, req),
    close: async () => (await loading.catch(() => null))?.close(),
    destroy: async () => (await loading.catch(() => null))?.destroy(),
  };
}

/** The transports of one HttpClient: for streamed bodies, and for bodies read whole. */
export function chooseTransports(options: HttpClientOptions): { streamed: Transport; whole: Transport } {
  const proxy = options.proxy;
  if (proxy) {
    // undici (and fetch-socks) load only for proxied jobs: most runs never pay for parsing them.
    const t = lazy(() => import('./proxy-transport.js').then((m) => m.proxyTransport({ ...options, proxy })));
    return { streamed: t, whole: t };
  }
  if (process.env['GABE_HTTP_TRANSPORT'] === 'undici') {
    const t = lazy(() =>
      import('./undici-transport.js').then((m) => new m.UndiciTransport(directOptions(options))),
    );
    return { streamed: t, whole: t };
  }
  return {
    streamed: new NativeTransport(directOptions(options)),
    whole: new H1Transport(directOptions(options)),
  };
}
