/**
 * Pure IP address classification for the destination guard (guard.ts): is this address one a
 * server-side fetch must never reach (SSRF)? Ranges come from the IANA special-purpose registries
 * (RFC 6890 and successors); IPv6 forms that embed an IPv4 address are judged by the embedded address,
 * because that is where the packets end up (a kernel, NAT64 gateway or 6to4 relay delivers them there).
 */
import { isIPv4, isIPv6 } from 'node:net';

export type AddressReason =
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'cgnat'
  | 'unique-local'
  | 'site-local'
  | 'multicast'
  | 'unspecified'
  | 'broadcast'
  | 'reserved'
  | 'benchmarking'
  | 'documentation'
  /** Not an IP address at all: the guard fails closed. */
  | 'invalid';

export interface ParsedIp {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/** One part of a legacy IPv4 spelling: `0x7f` (hex), `0177` (octal), `127` (decimal). */
function parseV4Part(part: string): number | null {
  if (/^0[xX][0-9a-fA-F]*$/.test(part)) return part.length === 2 ? 0 : Number.parseInt(part.slice(2), 16);
  if (/^0[0-7]+$/.test(part)) return Number.parseInt(part.slice(1), 8);
  if (/^(0|[1-9][0-9]*)$/.test(part)) return Number(part);
  return null;
}

/**
 * The WHATWG URL IPv4 parser (also inet_aton's grammar): 1 to 4 parts, each decimal, octal or hex, the
 * last part filling the remaining bytes, so `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1` all
 * mean 127.0.0.1. Accepted so that no spelling of a forbidden address can pass as "not an IP".
 */
export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  if (parts.length === 0 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const part of parts) {
    const n = parseV4Part(part);
    if (n === null || !Number.isFinite(n)) return null;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return null;
  let value = last;
  nums.forEach((n, i) => {
    value += n * 256 ** (3 - i);
  });
  return Uint8Array.of(value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255);
}

/** Any valid IPv6 text (`::`, `::ffff:1.2.3.4`, a `%zone` suffix, in brackets or not) to 16 bytes. */
export function parseIPv6(text: string): Uint8Array | null {
  let s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  s = s.replace(/%.*$/, ''); // zone id (fe80::1%eth0): names the interface, not the address
  if (!isIPv6(s)) return null;
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    // isIPv6 accepted it, so the tail is strict dotted decimal.
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number];
    s = `${s.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const words = (x: string) => (x === '' ? [] : x.split(':').map((w) => Number.parseInt(w, 16)));
  const left = words(head);
  const right = rest === undefined ? [] : words(rest);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[i * 2] = w >> 8;
    bytes[i * 2 + 1] = w & 255;
  });
  return bytes;
}

/** Parses any IPv4 (any legacy spelling) or IPv6 text; null for host names. */
export function parseIp(text: string): ParsedIp | null {
  if (isIPv4(text) || /^[0-9a-fA-FxX.]+$/.test(text)) {
    const v4 = parseIPv4(text);
    if (v4) return { family: 4, bytes: v4 };
  }
  const v6 = parseIPv6(text);
  return v6 ? { family: 6, bytes: v6 } : null;
}

interface Rule {
  prefix: Uint8Array;
  bits: number;
  reason: AddressReason;
}

function rule(cidr: string, reason: AddressReason): Rule {
  const [addr, bits] = cidr.split('/') as [string, string];
  const prefix = parseIp(addr)?.bytes;
  if (!prefix) throw new Error(`bad rule ${cidr}`);
  return { prefix, bits: Number(bits), reason };
}

function matches(bytes: Uint8Array, r: Rule): boolean {
  if (bytes.length !== r.prefix.length) return false;
  const full = r.bits >> 3;
  for (let i = 0; i < full; i++) if (bytes[i] !== r.prefix[i]) return false;
  const rem = r.bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (bytes[full]! & mask) === (r.prefix[full]! & mask);
}

// First match wins (broadcast before 240/4).
const V4_RULES: Rule[] = [
  // RFC 1122 "this network"; Linux connects 0.0.0.0 (and 0/8) to the local host.
  rule('0.0.0.0/8', 'unspecified'),
  rule('10.0.0.0/8', 'private'), // RFC 1918
  rule('100.64.0.0/10', 'cgnat'), // RFC 6598 shared address space: the ISP's side of a carrier NAT
  rule('127.0.0.0/8', 'loopback'),
  rule('169.254.0.0/16', 'link-local'), // RFC 3927; 169.254.169.254 is every cloud's metadata service
  rule('172.16.0.0/12', 'private'),
  rule('192.0.0.0/24', 'reserved'), // IETF protocol assignments (DS-Lite, NAT64 discovery)
  rule('192.0.2.0/24', 'documentation'), // TEST-NET-1
  rule('192.88.99.0/24', 'reserved'), // deprecated 6to4 relay anycast (RFC 7526)
  rule('192.168.0.0/16', 'private'),
  rule('198.18.0.0/15', 'benchmarking'), // RFC 2544: lab networks
  rule('198.51.100.0/24', 'documentation'), // TEST-NET-2
  rule('203.0.113.0/24', 'documentation'), // TEST-NET-3
  rule('224.0.0.0/4', 'multicast'),
  rule('255.255.255.255/32', 'broadcast'),
  rule('240.0.0.0/4', 'reserved'), // former class E
];

const V6_RULES: Rule[] = [
  rule('64:ff9b:1::/48', 'reserved'), // RFC 8215 local-use NAT64: site-specific translation
  rule('100::/64', 'reserved'), // RFC 6666 discard-only
  rule('2001:2::/48', 'benchmarking'), // RFC 5180
  rule('2001:db8::/32', 'documentation'), // RFC 3849
  rule('3fff::/20', 'documentation'), // RFC 9637
  rule('fc00::/7', 'unique-local'), // RFC 4193: the IPv6 RFC 1918
  rule('fe80::/10', 'link-local'),
  rule('fec0::/10', 'site-local'), // deprecated by RFC 3879 but still routed inside some sites
  rule('ff00::/8', 'multicast'),
];

const GLOBAL_UNICAST = rule('2000::/3', 'reserved');
const MAPPED = rule('::ffff:0:0/96', 'reserved'); // RFC 4291 IPv4-mapped: the kernel speaks IPv4
const TRANSLATED = rule('::ffff:0:0:0/96', 'reserved'); // RFC 2765 SIIT IPv4-translated
const NAT64 = rule('64:ff9b::/96', 'reserved'); // RFC 6052 well-known NAT64 prefix
const COMPAT = rule('::/96', 'reserved'); // RFC 4291 IPv4-compatible (deprecated)
const SIX_TO_FOUR = rule('2002::/16', 'reserved'); // RFC 3056: 2002:AABB:CCDD::/48 carries A.B.C.D
const TEREDO = rule('2001::/32', 'reserved'); // RFC 4380: client IPv4 in the last 32 bits, inverted

function classifyV4(bytes: Uint8Array): AddressReason | null {
  return V4_RULES.find((r) => matches(bytes, r))?.reason ?? null;
}

function classifyV6(b: Uint8Array): AddressReason | null {
  if (b.every((x, i) => x === 0 || (i === 15 && x === 1))) return b[15] === 1 ? 'loopback' : 'unspecified';
  if (matches(b, MAPPED) || matches(b, TRANSLATED) || matches(b, NAT64)) return classifyV4(b.subarray(12));
  // ::a.b.c.d is deprecated and never routed: refused even when it embeds a public address.
  if (matches(b, COMPAT)) return classifyV4(b.subarray(12)) ?? 'reserved';
  if (matches(b, SIX_TO_FOUR)) return classifyV4(b.subarray(2, 6));
  if (matches(b, TEREDO)) return classifyV4(b.subarray(12).map((x) => x ^ 0xff));
  const hit = V6_RULES.find((r) => matches(b, r));
  if (hit) return hit.reason;
  // Only 2000::/3 is allocated for global unicast; anything else is unassigned or special.
  return matches(b, GLOBAL_UNICAST) ? null : 'reserved';
}

/**
 * Why a fetch must not reach `ip`, or null when it is an ordinary public address. Accepts IPv4 in any
 * legacy spelling (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`) and IPv6 with or without
 * brackets or a zone id. Embedded IPv4 forms (`::ffff:127.0.0.1`, `::127.0.0.1`, NAT64 `64:ff9b::/96`,
 * 6to4 `2002::/16`, Teredo) answer the embedded address's reason. Anything that is not an IP address
 * answers 'invalid': a security check that cannot parse its input must refuse it.
 */
export function classifyAddress(ip: string): AddressReason | null {
  const parsed = parseIp(ip.trim());
  if (!parsed) return 'invalid';
  return parsed.family === 4 ? classifyV4(parsed.bytes) : classifyV6(parsed.bytes);
}
