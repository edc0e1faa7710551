/**
 * Proxied requests (config or job `proxy`): undici's ProxyAgent for http(s) proxies, fetch-socks for
 * SOCKS5. Loaded on demand by net/client.ts. How the proxy itself is connected to, and guarded, is
 * proxy-connect.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { Agent, type Dispatcher, ProxyAgent, request } from 'undici';
import { GabeError } from '../../service/errors.js';
import type { HttpClientOptions } from '../client-options.js';
import { HeadTally, parsedHeadBytes, TransferWatch, type Watch } from '../deadlines.js';
import { redactCredentials } from '../redact.js';
import { undiciAgentLimits, undiciLimitError } from '../undici-limits.js';
import { httpProxyConnect, socksConnect } from './proxy-connect.js';
import type { RawRequest, RawResponse, Transport } from './transport.js';

/**
 * deadlines.ts's limits on one undici request, as a handler around undici's own: the head deadline
 * from the request going out (undici's headersTimeout starts over with every 1xx), the interim
 * responses counted and their bytes added up, and the body's bytes counted for the speed floor. The
 * proxied path counts bytes per chunk: undici does not show us the socket whose counter we would read.
 * undici's own timeouts and head limit (set from the same numbers below) fail with deadlines.ts's
 * errors, as on the direct transports.
 */
class LimitsHandler implements Dispatcher.DispatchHandler {
  private watch: Watch | null = null;
  private bytes = 0;
  private readonly heads = new HeadTally();
  /** The final head arrived: a header overflow from here on is the trailers'. */
  private inBody = false;

  constructor(
    private readonly watches: TransferWatch,
    private readonly handler: Dispatcher.DispatchHandler,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.watch = this.watches.watch(
      () => this.bytes,
      (err) => controller.abort(err),
    );
    this.watch.head();
    this.handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    this.handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    const refusal = this.heads.add(statusCode, parsedHeadBytes(headers));
    if (refusal) {
      this.watch?.end();
      controller.abort(refusal);
      return;
    }
    if (statusCode >= 200) {
      this.inBody = true;
      this.watch?.body(() => controller.paused);
    }
    this.handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    this.handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.watch?.end();
    this.handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.watch?.end();
    this.handler.onResponseError?.(controller, undiciLimitError(error, this.watches.limits, this.inBody));
  }
}

class ProxiedTransport implements Transport {
  private readonly dispatcher: Dispatcher;

  constructor(
    private readonly base: Dispatcher,
    watches: TransferWatch,
  ) {
    this.dispatcher = base.compose(
      (dispatch) => (opts, handler) => dispatch(opts, new LimitsHandler(watches, handler)),
    );
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
