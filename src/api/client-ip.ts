/**
 * Which X-Forwarded-For entry is the client (config `trust_proxy`). Each proxy appends the address it
 * received the request from, so only entries added by proxies we trust can be believed, read from the
 * right; everything left of them was written by the client and may be forged. Fastify's own `true`
 * takes the left-most entry (the client's own claim) and its numeric hop count now trusts nothing, so
 * both are mapped here to proxy-addr trust functions.
 */
import { isIP } from 'node:net';
import type { FastifyServerOptions } from 'fastify';

export type TrustProxySetting = boolean | number | readonly string[];

/** proxy-addr's names for address ranges, accepted in a `trust_proxy` list. */
const RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** `true` means the usual single reverse proxy in front of the service. */
export const TRUE_HOPS = 1;

/**
 * The Fastify `trustProxy` for a `trust_proxy` setting: false = the socket's peer is the client; a
 * number n (true = 1) = the n proxies nearest the service are trusted, whatever their address; a list
 * of addresses and CIDR ranges = proxies at those addresses are trusted. `req.ip` is then the right-most
 * address that is not a trusted proxy: the one the last trusted proxy saw.
 */
export function trustProxyOption(setting: TrustProxySetting): FastifyServerOptions['trustProxy'] {
  if (setting === false) return false;
  if (Array.isArray(setting)) return [...setting];
  const hops = setting === true ? TRUE_HOPS : (setting as number);
  // proxy-addr asks with i = 0 for the socket's peer, then for each X-Forwarded-For entry from the right.
  return (_address: string, i: number) => i < hops;
}

/** Why a `trust_proxy` list entry is not an address, a CIDR range or a range name; null when it is. */
export function invalidTrustEntry(entry: string): string | null {
  if (RANGE_NAMES.has(entry)) return null;
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0)
    return `"${entry}" is not an IP address, a CIDR range or one of ${[...RANGE_NAMES].join(', ')}`;
  if (slash < 0) return null;
  const prefix = entry.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max)
    return `"${entry}" has a prefix length that is not 0-${max}`;
  return null;
}

/** The start-up line that says what `trust_proxy` means, or null when nothing is trusted. */
export function describeTrust(setting: TrustProxySetting): string | null {
  if (setting === false) return null;
  if (Array.isArray(setting))
    return `trust_proxy: X-Forwarded-For is believed only as written by proxies at ${setting.join(', ')}`;
  const hops = setting === true ? TRUE_HOPS : (setting as number);
  return (
    `trust_proxy: ${String(setting)} trusts the ${hops === 1 ? 'nearest proxy' : `${hops} nearest proxies`}: ` +
    `the client is the address ${hops === 1 ? 'it' : 'the last of them'} saw (X-Forwarded-For read from the right); ` +
    'only safe when the service cannot be reached except through them'
  );
}
