/**
 * The Host check against DNS rebinding: a web page on attacker.example makes its name resolve to
 * 127.0.0.1, and the victim's browser then talks to the service as if it were attacker.example's own
 * (same origin, so it reads the answers too). Only the Host header still says which name the browser
 * meant, so a service that answers only its own names cannot be driven that way, keys or no keys.
 */
import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';

/** The names a loopback-bound service is reached by on its own machine. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** Routes answered under any name: container and load-balancer probes use the pod or node address. */
const EXEMPT_ROUTES = new Set(['/health']);

/** The host part of a Host header or an allowed_hosts entry: lower case, no port, no trailing dot. */
export function normalizeHost(value: string): string {
  let host = value.trim().toLowerCase();
  if (isIP(host) === 6) return `[${host}]`;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end < 0 ? host : host.slice(0, end + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

export function isLoopbackBind(host: string): boolean {
  const h = normalizeHost(host);
  return h === 'localhost' || h === '[::1]' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * The names the service answers for, or null for any. `allowed_hosts` when set ("*" = any); otherwise,
 * bound to loopback, localhost, 127.0.0.1, [::1] and the bind address. Bound to a wildcard or another
 * address, no check: the service is then reached by names it cannot know (a LAN address, a DNS or
 * container name, the Host a reverse proxy passes on), and refusing them would break it; such a
 * service is exposed to more than rebinding anyway and should have api_keys or allowed_hosts.
 */
export function allowedHosts(config: Pick<Config, 'allowed_hosts' | 'host'>): Set<string> | null {
  if (config.allowed_hosts) {
    if (config.allowed_hosts.includes('*')) return null;
    return new Set(config.allowed_hosts.map(normalizeHost));
  }
  if (!isLoopbackBind(config.host)) return null;
  return new Set([...LOOPBACK_NAMES, normalizeHost(config.host)]);
}

/** Why an allowed_hosts entry can never match a Host header; null when it is fine. */
export function invalidHostEntry(entry: string): string | null {
  if (entry === '*' || isIP(entry) !== 0) return null;
  if (/^\[[0-9a-f:.]+\]$/i.test(entry) && isIP(entry.slice(1, -1)) === 6) return null;
  if (
    /^(?=.{1,253}\.?$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i.test(
      entry,
    )
  )
    return null;
  return `"${entry}" is not a host name or an IP address (leave out the scheme and the port)`;
}

/**
 * The onRequest hook: 421 Misdirected Request (RFC 9110 15.5.20: the server is not configured to answer
 * for the request's authority) with GABE_ERR_HOST_NOT_ALLOWED. Null when every name is allowed.
 */
export function hostCheckHook(
  config: Pick<Config, 'allowed_hosts' | 'host'>,
): ((req: FastifyRequest, reply: FastifyReply) => Promise<void>) | null {
  const allowed = allowedHosts(config);
  if (!allowed) return null;
  return async (req) => {
    if (EXEMPT_ROUTES.has(req.url.split('?')[0] ?? '')) return;
    // The Host header itself, never X-Forwarded-Host: the browser writes Host, a client anything else.
    const raw = req.headers.host;
    const host = raw === undefined ? null : normalizeHost(raw);
    if (host !== null && allowed.has(host)) return;
    const shown = raw === undefined ? 'a request without Host' : `host "${raw.slice(0, 100)}"`;
    throw new GabeError(
      'HOST_NOT_ALLOWED',
      `${shown} is not a name this service answers for; if it is this service's name, add it to allowed_hosts`,
    );
  };
}
