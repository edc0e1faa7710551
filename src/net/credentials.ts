/**
 * Which request carries which credentials. Pure functions; HttpClient applies them on every hop.
 *
 * Credentials are the headers a site uses to know who is asking: Authorization, Cookie and
 * Proxy-Authorization (from a job's `headers` or the config's), and the `user:pass@` of a URL, which
 * becomes `Authorization: Basic` (RFC 7617) for that URL's origin and is never sent as part of a URL.
 *
 * The rule is the origin's (RFC 6454: scheme, host and port). The Fetch standard drops Authorization on
 * a redirect to another origin (HTTP-redirect fetch, step "CORS non-wildcard request-header name") and
 * refuses a Location with credentials for another origin; curl drops Authorization and Cookie when
 * the host, port or scheme changes (CVE-2018-1000007, CVE-2022-27776). Once dropped they stay dropped
 * for the rest of the chain, as in Fetch, where they are deleted from the request: a redirect back to
 * the first origin comes from a server that was not given them, and may not steer them (curl 7.88
 * sends its -H headers again in that case; Gabe does not).
 */

/** Header names (lower case) that carry credentials. */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'cookie', 'proxy-authorization'];

/** `headers` without the credential headers. */
export function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!CREDENTIAL_HEADERS.includes(name.toLowerCase())) out[name] = value;
  }
  return out;
}

/** True when `headers` has any credential header. */
export function hasCredentials(headers: Record<string, string> | undefined): boolean {
  return Object.keys(headers ?? {}).some((name) => CREDENTIAL_HEADERS.includes(name.toLowerCase()));
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part; // a malformed escape is sent as written, as curl does
  }
}

/**
 * The `Authorization: Basic` value for a URL's `user:pass@`, or null without one. WHATWG URL keeps the
 * user name and password percent-encoded; they are decoded first, as curl and Node's http do.
 */
export function basicAuthorization(url: URL): string | null {
  if (!url.username && !url.password) return null;
  const pair = `${decode(url.username)}:${decode(url.password)}`;
  return `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
}

/** A copy of `url` without `user:pass@`: what goes on the wire and into a response's `url`. */
export function withoutUserinfo(url: URL): URL {
  if (!url.username && !url.password) return url;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy;
}

/** Credentials of one URL, bound to its origin. */
export interface OriginCredentials {
  origin: string;
  authorization: string;
}

/** The origin of `url`, or null when it is not a URL. */
export function originOf(url: string | null | undefined): string | null {
  try {
    return url ? new URL(url).origin : null;
  } catch {
    return null;
  }
}

/** The Basic credentials of `url` for its origin, or null when it has none. */
export function originCredentials(url: string | null | undefined): OriginCredentials | null {
  if (!url) return null;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  const authorization = basicAuthorization(u);
  return authorization ? { origin: u.origin, authorization } : null;
}

/**
 * The headers of one hop. `left`: the chain has been to another origin than it started at (then no
 * credentials at all). Otherwise an explicit Authorization wins over `basic` (as curl's -H wins over
 * -u), and `basic` (the URL's own, or the job URL's for its origin) is added.
 */
export function hopHeaders(
  headers: Record<string, string>,
  left: boolean,
  basic: string | null,
): Record<string, string> {
  if (left) return withoutCredentials(headers);
  if (!basic || Object.keys(headers).some((n) => n.toLowerCase() === 'authorization')) return headers;
  return { ...headers, authorization: basic };
}
