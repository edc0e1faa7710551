/**
 * How Gabe connects to a proxy. A job's own proxy gets the destination guard of every direct hop
 * (guard.ts, layer 3): its name is resolved by the guard and only checked addresses are connected to,
 * an IP literal is checked before connecting, and the peer address of the socket once more before
 * anything is sent on it. Checking the name only at submission let a name that resolved elsewhere
 * later reach [::1]. The config's proxy (guard null) is the operator's and connected to as it is.
 */
import dns from 'node:dns';
import type { Socket } from 'node:net';
import { socksConnector } from 'fetch-socks';
import { type buildConnector, type Dispatcher, Pool, type ProxyAgent } from 'undici';
import { GabeError, isGabeError } from '../../service/errors.js';
import {
  checkHostDestination,
  type GuardOptions,
  guardedLookup,
  peerRefusal,
  resolveForConnect,
} from '../guard.js';

type Connector = buildConnector.connector;

/** `[::1]` → `::1`: how net.connect and SOCKS5 want an IPv6 literal. */
const bare = (hostname: string) => hostname.replace(/^\[|\]$/g, '');

/** Wraps `inner` so that a literal is checked before and the peer address after connecting. */
function guardedConnector(inner: Connector, host: string, guard: GuardOptions): Connector {
  return (options, callback) => {
    try {
      checkHostDestination(host, guard, 'proxy');
    } catch (err) {
      return callback(err as Error, null);
    }
    inner(options, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      const refused = peerRefusal(socket as Socket, guard, host, 'proxy');
      if (refused) {
        socket.destroy();
        return callback(refused, null);
      }
      callback(null, socket);
    });
  };
}

/**
 * undici treats a proxy that closes the connection before answering CONNECT (UND_ERR_SOCKET) as a
 * recoverable socket error and connects again at once, without limit or pause: such a proxy took
 * about 7,000 connections a second from one job, which never ended. As a retryable PROXY error the
 * request fails and the job's retry policy paces and bounds the next attempts.
 */
function failClosedTunnels(pool: Pool, proxy: URL): Pool {
  const connect = pool.connect.bind(pool) as (
    o: Dispatcher.ConnectOptions,
  ) => Promise<Dispatcher.ConnectData>;
  return Object.assign(pool, {
    connect: (o: Dispatcher.ConnectOptions) =>
      connect(o).catch((err: { code?: string }) => {
        if (err?.code !== 'UND_ERR_SOCKET') throw err;
        throw new GabeError(
          'PROXY',
          `the proxy ${proxy.host} closed the connection before answering CONNECT`,
          {
            cause: err,
            retryable: true,
          },
        );
      }),
  });
}

/** ProxyAgent options for an http(s) proxy: how the connection to the proxy is made. */
export function httpProxyConnect(
  proxy: URL,
  guard: GuardOptions | null,
  timeoutMs: number,
): Pick<ProxyAgent.Options, 'proxyTls' | 'clientFactory'> {
  const host = bare(proxy.hostname);
  return {
    // Options of the connection to the proxy (TLS ones too for https://): the guard's lookup and
    // connection_timeout (undici's default would be 10 s).
    proxyTls: { timeout: timeoutMs, ...(guard ? { lookup: guardedLookup(guard, 'proxy') } : {}) },
    clientFactory: (origin, raw) => {
      const options = raw as Pool.Options;
      const connect = options.connect as Connector;
      const pool = new Pool(origin, {
        ...options,
        connect: guard ? guardedConnector(connect, host, guard) : connect,
      });
      return failClosedTunnels(pool, proxy);
    },
  };
}

/** The first address of `host`: checked by the guard when there is one, else the system's. */
async function addressOf(host: string, guard: GuardOptions | null, what: string): Promise<string> {
  if (guard) return (await resolveForConnect(host, guard, what))[0]!.address;
  return (await dns.promises.lookup(host)).address;
}

/**
 * An undici connector through a SOCKS5 proxy (fetch-socks). The proxy's name is resolved here (by the
 * guard when there is one) and fetch-socks gets the checked address, so nothing resolves it again.
 * The target: socks5h:// hands the proxy the name to resolve (RFC 1928 ATYP 3); socks5:// resolves it
 * here, as curl does, and hands the proxy the address, checked by the guard at this moment, so
 * a name that rebinds after the request's first check cannot get through.
 */
export function socksConnect(proxy: URL, guard: GuardOptions | null, timeoutMs: number): Connector {
  const host = bare(proxy.hostname);
  const port = Number(proxy.port || 1080);
  const auth = {
    ...(proxy.username ? { userId: decodeURIComponent(proxy.username) } : {}),
    ...(proxy.password ? { password: decodeURIComponent(proxy.password) } : {}),
  };
  const remoteDns = proxy.protocol === 'socks5h:';
  // One fetch-socks connector (and its TLS session cache) per proxy address; a name has few.
  const connectors = new Map<string, Connector>();
  const via = (address: string): Connector => {
    let connector = connectors.get(address);
    if (!connector) {
      if (connectors.size >= 16) connectors.clear();
      connector = socksConnector({ type: 5, host: address, port, ...auth }, { timeout: timeoutMs });
      connectors.set(address, connector);
    }
    return connector;
  };
  return (options, callback) => {
    const resolving = Promise.all([
      guard ? addressOf(host, guard, 'proxy') : Promise.resolve(host),
      remoteDns ? Promise.resolve(options.hostname) : addressOf(options.hostname, guard, 'host'),
    ]);
    resolving.then(
      ([address, target]) =>
        via(address)({ ...options, hostname: target }, (err, socket) => {
          if (err || !socket) return callback(proxyError(err, proxy), null);
          const refused = guard ? peerRefusal(socket as Socket, guard, host, 'proxy') : null;
          if (refused) {
            socket.destroy();
            return callback(refused, null);
          }
          callback(null, socket);
        }),
      (err: Error) => callback(err, null),
    );
  };
}

/** A SOCKS client's own failure (no errno code) as a PROXY error rather than an INTERNAL one. */
function proxyError(err: Error | null, proxy: URL): Error {
  if (!err) return new GabeError('PROXY', `SOCKS5 proxy ${proxy.host}: no connection`);
  if (isGabeError(err) || (err as { code?: string }).code) return err;
  return new GabeError('PROXY', `SOCKS5 proxy ${proxy.host}: ${err.message}`, { cause: err });
}
