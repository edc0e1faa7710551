/**
 * The destination guard (SSRF protection). Unless allow_private_networks is true, nothing the service
 * fetches (playlist, variant, segment, key, map, MP4, every redirect hop) may reach loopback, private,
 * link-local (cloud metadata at 169.254.169.254), CGNAT, unique-local, multicast or other special
 * addresses: a public API that fetches URLs for its callers must not become their way into the
 * network it runs in.
 *
 * Three layers, each closing what the one before cannot:
 * 1. `checkUrlDestination`: synchronous, on the URL itself: the scheme, IP literals in every spelling
 *    (WHATWG URL has already turned `2130706433`, `0x7f.1` and `0177.0.0.1` into `127.0.0.1`) and
 *    names that are local by definition (`localhost`, `*.localhost`, `.local`…). Used at submission
 *    and before every hop.
 * 2. `resolveAndCheck`: resolves a name and refuses it when ANY answer is forbidden. Used at
 *    submission (early, clear 400) and, through a proxy, before each request.
 * 3. `guardedLookup`: the `lookup` of every direct connection (net/transports/node-transport.ts,
 *    h1-transport.ts, and the bench-only undici-transport.ts) and of the connection to a job's own
 *    proxy (net/transports/proxy-connect.ts). It resolves, checks and hands
 *    net.connect only the checked addresses, so what is checked is exactly what is connected to: a
 *    name that answers a public address to the check and 127.0.0.1 to the connect (DNS rebinding)
 *    cannot get through, since there is only one resolution. IP literals (which net.connect never
 *    looks up) and the peer address of every new socket are checked there once more (belt and
 *    braces).
 *
 * Through a proxy the target is the proxy's to connect to: only layer 2 applies to it, before each
 * request, and a name that rebinds between our lookup and the proxy's is beyond its reach (give such
 * a proxy egress rules of its own), except with socks5://, where Gabe resolves the target itself with
 * layer 3 and hands the proxy the checked address. The proxy itself is connected to like a direct
 * hop when the job named it; the config's proxy is the operator's, trusted, and may sit on loopback.
 */
import dns, { type LookupAddress } from 'node:dns';
import net from 'node:net';
import { GabeError, isGabeError } from '../service/errors.js';
import { type AddressReason, classifyAddress, parseIp } from './address.js';

export { type AddressReason, classifyAddress } from './address.js';

export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/**
 * Seams for tests, never set from config: production passes nothing (system DNS, no exceptions).
 */
export interface GuardOptions {
  /** Resolves a name to all its addresses; default `dns.promises.lookup(name, { all: true })`. */
  resolve?: Resolver;
  /** Addresses allowed although forbidden (a test origin on 127.0.0.1 behind a fake public name). */
  allowAddresses?: readonly string[];
}

const HINT = '; private and local destinations are refused unless allow_private_networks is true';

const systemResolve: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true });

function forbidden(message: string, details: Record<string, unknown>): GabeError {
  return new GabeError('FORBIDDEN_DESTINATION', message + HINT, { details });
}

/** The reason `ip` is forbidden, or null when it is public or explicitly allowed. */
export function addressReason(ip: string, guard: GuardOptions): AddressReason | null {
  const reason = classifyAddress(ip);
  if (reason === null || reason === 'invalid') return reason;
  const bytes = parseIp(ip)?.bytes;
  const allowed = guard.allowAddresses?.some((a) => {
    const b = parseIp(a)?.bytes;
    return (
      b !== undefined && bytes !== undefined && b.length === bytes.length && b.every((x, i) => x === bytes[i])
    );
  });
  return allowed ? null : reason;
}

// Names that are local by definition, whatever a resolver says. RFC 6761 §6.3 reserves `localhost`
// and `*.localhost` for loopback; RFC 6762 makes `.local` link-local (mDNS); RFC 8375 gives
// `.home.arpa` to home networks; ICANN reserved `.internal` for private use (GCP's metadata server
// is metadata.google.internal). The exact names are Debian's /etc/hosts loopback aliases.
const LOCAL_NAMES: ReadonlyMap<string, string> = new Map([
  ['localhost', 'loopback'],
  ['localhost.localdomain', 'loopback'],
  ['ip6-localhost', 'loopback'],
  ['ip6-loopback', 'loopback'],
]);
const LOCAL_SUFFIXES: readonly [string, string][] = [
  ['.localhost', 'loopback'],
  ['.local', 'link-local'],
  ['.home.arpa', 'private'],
  ['.internal', 'private'],
];

/** `[::1]` → `::1`, `Example.COM.` → `example.com` (a trailing dot is the same name, fully qualified). */
function normalizeHost(hostname: string): string {
  const h = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return h.toLowerCase().replace(/\.+$/, '');
}

/** Throws when `hostname` is a forbidden IP literal or a local-only name. No I/O. */
export function checkHostDestination(hostname: string, guard: GuardOptions = {}, what = 'host'): void {
  const host = normalizeHost(hostname);
  if (parseIp(host)) {
    const reason = addressReason(host, guard);
    if (reason) throw forbidden(`refusing ${what} ${hostname}: a ${reason} address`, { host, reason });
    return;
  }
  const local =
    LOCAL_NAMES.get(host) ?? LOCAL_SUFFIXES.find(([suffix]) => host.endsWith(suffix))?.[1] ?? null;
  if (local) throw forbidden(`refusing ${what} ${hostname}: a ${local} name`, { host, reason: local });
}

/**
 * The synchronous check of a URL: http or https only (INVALID_URL otherwise, as `checkUrl` answers),
 * and a host that is neither a forbidden IP literal in any spelling nor a local-only name.
 */
export function checkUrlDestination(url: string | URL, guard: GuardOptions = {}): void {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : url;
  } catch {
    throw new GabeError('INVALID_URL', `"${String(url).slice(0, 200)}" is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new GabeError('INVALID_URL', `only http and https URLs are supported, not ${u.protocol}`);
  }
  checkHostDestination(u.hostname, guard);
}

export function refuseConnect(
  address: string,
  reason: AddressReason,
  hostname: string,
  what = 'host',
): GabeError {
  return forbidden(
    `refusing to connect to ${address || 'an unknown address'} (${reason}) for ${what} ${hostname}`,
    {
      host: hostname,
      address,
      reason,
    },
  );
}

/**
 * Resolves `hostname` and refuses it when any answer is forbidden. DNS errors propagate as they are.
 * `forConnect` words the refusal as the connector's ("refusing to connect to 127.0.0.1 ...").
 */
async function resolveStrict(
  hostname: string,
  guard: GuardOptions,
  what = 'host',
  forConnect = false,
): Promise<LookupAddress[]> {
  checkHostDestination(hostname, guard, what);
  const host = normalizeHost(hostname);
  if (parseIp(host)) return [{ address: host, family: net.isIPv6(host) ? 6 : 4 }];
  const answers = await (guard.resolve ?? systemResolve)(host);
  // Any, not all: a name answering [public, private] would otherwise get the private one on a retry,
  // or from Happy Eyeballs falling back to the next address.
  for (const { address } of answers) {
    const reason = addressReason(address, guard);
    if (!reason) continue;
    if (forConnect) throw refuseConnect(address, reason, hostname, what);
    throw forbidden(`refusing ${what} ${hostname}: it resolves to ${address} (${reason})`, {
      host,
      address,
      reason,
    });
  }
  return answers;
}

/**
 * The name check with DNS, for early and clear answers (submission, proxied requests). A name that
 * does not resolve, or not within `timeoutMs`, is not refused: the fetch itself will fail with a
 * network error, and through a proxy the proxy may resolve names we cannot. Returns the answers.
 */
export async function resolveAndCheck(
  hostname: string,
  guard: GuardOptions = {},
  options: { timeoutMs?: number; what?: string } = {},
): Promise<LookupAddress[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    // Not unref'd: it is always cleared below, and a lookup that never settles must still end.
    timer = setTimeout(() => resolve(null), options.timeoutMs ?? 3000);
  });
  try {
    const answers = await Promise.race([resolveStrict(hostname, guard, options.what), timeout]);
    return answers ?? [];
  } catch (err) {
    if (isGabeError(err, 'FORBIDDEN_DESTINATION')) throw err;
    return [];
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The addresses to connect to for `hostname`, every one checked (refusals worded as the connector's);
 * for connectors that take an address rather than a `lookup` (SOCKS5). DNS errors propagate.
 */
export function resolveForConnect(
  hostname: string,
  guard: GuardOptions,
  what = 'host',
): Promise<LookupAddress[]> {
  return resolveStrict(hostname, guard, what, true);
}

/** net.connect's `lookup`: the resolution that is checked is the one that is connected to. */
export function guardedLookup(guard: GuardOptions, what = 'host'): net.LookupFunction {
  return (hostname, options, callback) => {
    resolveStrict(hostname, guard, what, true).then(
      (answers) => {
        const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
        const wanted = family === 4 || family === 6 ? answers.filter((a) => a.family === family) : answers;
        const first = wanted[0];
        if (!first) {
          const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
          err.code = 'ENOTFOUND';
          callback(err, '');
        } else if (options.all) callback(null, wanted);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
}

/** The guard's refusal inside whatever undici or a stream wrapped around it, if any. */
export function findForbidden(err: unknown): GabeError | null {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (isGabeError(e, 'FORBIDDEN_DESTINATION')) return e;
  }
  return null;
}

/**
 * `err`, or, when it wraps a guard refusal (a SEGMENT or KEY error around it), a FORBIDDEN_DESTINATION
 * error with the wrapper's message: a refused hop fails the job with the guard's code, in context.
 */
export function surfaceForbidden(err: unknown): unknown {
  const refusal = findForbidden(err);
  if (!refusal || refusal === err) return err;
  return new GabeError('FORBIDDEN_DESTINATION', (err as Error).message, {
    cause: err,
    details: refusal.details,
  });
}

/**
 * The refusal for a URL whose host is a forbidden IP literal, or null: net.connect never looks up
 * literals, so the guarded lookup would not see them.
 */
export function literalRefusal(url: URL, guard: GuardOptions): GabeError | null {
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  const reason = net.isIP(literal) ? addressReason(literal, guard) : null;
  return reason ? refuseConnect(literal, reason, url.hostname) : null;
}

/** Checks the address a new socket connected to, once more; a forbidden one is destroyed (by `destroy`). */
export function guardPeer(
  socket: net.Socket,
  guard: GuardOptions,
  hostname: string,
  destroy: (e: Error) => unknown = (e) => socket.destroy(e),
): void {
  socket.once('connect', () => {
    const refused = peerRefusal(socket, guard, hostname);
    if (refused) destroy(refused);
  });
}

/** The refusal for a connected socket whose peer address is forbidden, or null. */
export function peerRefusal(
  socket: net.Socket,
  guard: GuardOptions,
  hostname: string,
  what = 'host',
): GabeError | null {
  const remote = socket.remoteAddress ?? '';
  const reason = addressReason(remote, guard);
  return reason ? refuseConnect(remote, reason, hostname, what) : null;
}
