import type { IncomingHttpHeaders } from 'node:http';
import { GabeError, HttpStatusError, toGabeError } from '../service/errors.js';
import type { HttpClientOptions } from './client-options.js';
import {
  basicAuthorization,
  hasCredentials,
  hopHeaders,
  type OriginCredentials,
  originCredentials,
  originOf,
  withoutUserinfo,
} from './credentials.js';
import { checkUrlDestination, findForbidden, resolveAndCheck } from './guard.js';
import type { RateLimiter } from './rate-limiter.js';
import { redactCredentials } from './redact.js';
import { isRetryableStatus, parseRetryAfter } from './retry.js';
import { ThrottledBody } from './throttled-body.js';
import { chooseTransports } from './transports/choose.js';
import type { HttpBody, RawResponse, Transport } from './transports/transport.js';
import { readWholeBody } from './whole-body.js';

export const USER_AGENT =
  // Some CDNs refuse requests without a browser-like agent; keep our name in it for origin logs.
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36 Gabe/0.1';

/** Largest body read by default (getChunks, open): a segment's, say. */
export const MAX_BODY_BYTES = 512 * 1024 * 1024;

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered, after redirects: playlists resolve their URIs against it. */
  url: string;
  body: HttpBody;
  contentLength: number | null;
}

export interface GetOptions {
  signal?: AbortSignal | undefined;
  /** Where a whole body with a known length goes (getChunks over H1Transport): a pool's buffer. */
  alloc?: ((size: number) => Buffer) | undefined;
  /** Inclusive byte range; `end` omitted = to the end. */
  range?: { start: number; end?: number | undefined } | undefined;
  headers?: Record<string, string>;
  method?: 'GET' | 'HEAD';
  /**
   * Not under the job's speed limit: playlists and keys, small and on the critical path (a live
   * reload or a key must not queue behind the segments' reads).
   */
  bypassLimit?: boolean;
}

export function checkUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new GabeError('INVALID_URL', `"${redactCredentials(raw.slice(0, 200))}" is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new GabeError('INVALID_URL', `only http and https URLs are supported, not ${u.protocol}`);
  }
  return u;
}

/**
 * A keep-alive HTTP client for one job. Redirects are followed here, one hop at a time, so every hop can
 * be checked and the final URL is known. Statuses other than 2xx become GabeErrors whose `retryable`
 * follows the retry policy, with Retry-After attached.
 */
export class HttpClient {
  private readonly transport: Transport;
  /** For bodies read whole (getChunks): direct connections use H1Transport (net/transports/h1-transport.ts). */
  private readonly wholeBodies: Transport;
  private readonly maxRedirects: number;
  /** Proxied and guarded: host names already checked with our DNS (one lookup per name and job). */
  private readonly proxiedHostChecks: Map<string, Promise<unknown>> | null;
  /** The job URL's Basic credentials, for its origin only. */
  private readonly jobCredentials: OriginCredentials | null;
  private readonly jobOrigin: string | null;
  /**
   * Origins first reached through a redirect from another origin, where the credential headers are
   * not sent on later requests either: an MP4's ranges and a redirected playlist's segments are
   * fetched from the redirect's target directly, which would otherwise hand it the credentials one
   * request after the redirect withheld them. The job URL's origin is never one. Kept only when there
   * are credential headers to withhold (a job's client lives as long as its job).
   */
  private readonly redirectedOrigins: Set<string> | null;
  /** The job's speed limit, if any: all its bodies, of every connection, draw from it. */
  readonly limiter: RateLimiter | null;

  constructor(readonly options: HttpClientOptions) {
    const transports = chooseTransports(options);
    this.transport = transports.streamed;
    this.wholeBodies = transports.whole;
    this.maxRedirects = options.maxRedirects ?? 10;
    this.proxiedHostChecks = options.proxy && !options.allowPrivateNetworks ? new Map() : null;
    this.jobCredentials = originCredentials(options.jobUrl);
    this.jobOrigin = originOf(options.jobUrl);
    this.redirectedOrigins = hasCredentials(options.headers) ? new Set() : null;
    this.limiter = options.limiter ?? null;
  }

  /**
   * The guard's per-hop check. Direct connections are also checked at connect time by the guarded
   * connector; through a proxy that cannot happen (the proxy connects), so the name is resolved here.
   */
  private async checkDestination(url: string): Promise<void> {
    if (this.options.allowPrivateNetworks) return;
    checkUrlDestination(url, this.options.guard);
    if (!this.proxiedHostChecks) return;
    const host = new URL(url).hostname;
    let check = this.proxiedHostChecks.get(host);
    if (!check) {
      check = resolveAndCheck(host, this.options.guard);
      this.proxiedHostChecks.set(host, check);
    }
    await check;
  }

  async get(rawUrl: string, options: GetOptions = {}): Promise<HttpResponse> {
    return this.send(rawUrl, options.method ?? 'GET', options, undefined, this.transport);
  }

  /**
   * POSTs a body (webhooks) and drains the answer. Only 307 and 308 redirects are followed, since only
   * they keep the method and body (RFC 9110 15.4); any other status outside 2xx is an error.
   */
  async post(
    rawUrl: string,
    body: string,
    options: Omit<GetOptions, 'range' | 'method'> = {},
  ): Promise<number> {
    const res = await this.send(rawUrl, 'POST', options, body, this.transport);
    await res.body.dump().catch(() => {});
    return res.status;
  }

  private async send(
    rawUrl: string,
    method: 'GET' | 'HEAD' | 'POST',
    options: GetOptions,
    body: string | undefined,
    transport: Transport,
  ): Promise<HttpResponse> {
    const start = checkUrl(rawUrl);
    const startOrigin = start.origin;
    // user:pass@ never goes on the wire as part of a URL (Node's http would turn it into Basic auth
    // for any host, H1Transport would drop it): it becomes a header for its own origin below.
    const basic =
      basicAuthorization(start) ??
      (this.jobCredentials?.origin === startOrigin ? this.jobCredentials.authorization : null);
    let url = withoutUserinfo(start).href;
    const headers: Record<string, string> = {
      'user-agent': USER_AGENT,
      ...this.options.headers,
      ...options.headers,
    };
    if (options.range) headers['range'] = `bytes=${options.range.start}-${options.range.end ?? ''}`;
    // Set once the chain goes to another origin than it started at; credentials stay off from there.
    let left = this.redirectedOrigins?.has(startOrigin) ?? false;
    for (let hop = 0; ; hop++) {
      await this.checkDestination(url);
      let res: RawResponse;
      try {
        res = await transport.request(new URL(url), {
          method,
          headers: hopHeaders(headers, left, basic),
          body,
          signal: options.signal,
        });
      } catch (err) {
        throw findForbidden(err) ?? toGabeError(err);
      }
      const follows = method !== 'POST' || res.statusCode === 307 || res.statusCode === 308;
      if (follows && res.statusCode >= 300 && res.statusCode < 400 && res.headers['location']) {
        await res.body.dump().catch(() => {});
        if (hop >= this.maxRedirects) {
          throw new GabeError(
            'TOO_MANY_REDIRECTS',
            `more than ${this.maxRedirects} redirects from ${redactCredentials(rawUrl)}`,
          );
        }
        const location = String(res.headers['location']);
        // Credentials in a Location are not used: only the job's own URL gives any.
        const next = withoutUserinfo(checkUrl(new URL(location, url).href));
        if (next.origin !== startOrigin) {
          left = true;
          if (next.origin !== this.jobOrigin) this.redirectedOrigins?.add(next.origin);
        }
        url = next.href;
        continue;
      }
      if (res.statusCode < 200 || res.statusCode >= 300) {
        await res.body.dump().catch(() => {});
        const retryAfter = parseRetryAfter(res.headers['retry-after']);
        throw new HttpStatusError(res.statusCode, url, {
          retryable: isRetryableStatus(res.statusCode),
          ...(retryAfter !== null ? { retryAfter: retryAfter / 1000 } : {}),
        });
      }
      // With Transfer-Encoding, Content-Length says nothing about the body (RFC 9112 6.3 rule 3).
      const len = res.headers['transfer-encoding'] === undefined ? res.headers['content-length'] : undefined;
      const contentLength = len !== undefined && /^\d+$/.test(String(len)) ? Number(len) : null;
      // The one place every body of the job passes: segments, ranges, keys and playlists alike.
      const limiter = method === 'HEAD' || options.bypassLimit ? null : this.limiter;
      return {
        status: res.statusCode,
        headers: res.headers,
        url,
        body: limiter ? new ThrottledBody(res.body, contentLength, limiter, options.signal) : res.body,
        contentLength,
      };
    }
  }

  /**
   * Reads a whole (small) body into memory, refusing more than `maxBytes` and failing, retryably, on
   * a body shorter than its Content-Length: a truncated segment must never pass for a whole one.
   */
  async getBuffer(
    url: string,
    options: GetOptions & { maxBytes?: number } = {},
  ): Promise<{ data: Buffer; res: HttpResponse }> {
    const { chunks, length, res } = await this.getChunks(url, options);
    return { data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length), res };
  }

  /**
   * getBuffer without joining the chunks: a segment on its way to disk and to ffmpeg needs no copy of
   * its own (joining them cost a tenth of the CPU of a download, in copies and garbage collection).
   */
  async getChunks(
    url: string,
    options: GetOptions & { maxBytes?: number } = {},
  ): Promise<{ chunks: Buffer[]; length: number; res: HttpResponse }> {
    const res = await this.open(url, options);
    return { ...(await this.readWhole(url, res, options)), res };
  }

  /**
   * A request whose body the caller reads, whole (readWhole) or as it comes (iterating `body`): a
   * segment decides which once it sees the Content-Length. Refuses a Content-Length over `maxBytes`.
   */
  async open(url: string, options: GetOptions & { maxBytes?: number } = {}): Promise<HttpResponse> {
    const res = await this.send(url, options.method ?? 'GET', options, undefined, this.wholeBodies);
    const max = options.maxBytes ?? MAX_BODY_BYTES;
    if (res.contentLength !== null && res.contentLength > max) {
      await res.body.dump().catch(() => {});
      throw new GabeError(
        'PLAYLIST_TOO_LARGE',
        `${url} is ${res.contentLength} bytes, more than ${max} allowed`,
      );
    }
    return res;
  }

  /**
   * Reads the body of an open()ed response (`url` as asked for, for messages) whole, refusing more
   * than `maxBytes` and failing, retryably, on a body shorter than its Content-Length.
   */
  async readWhole(
    url: string,
    res: HttpResponse,
    options: Pick<GetOptions, 'alloc'> & { maxBytes?: number } = {},
  ): Promise<{ chunks: Buffer[]; length: number }> {
    return readWholeBody(url, res, options.maxBytes ?? MAX_BODY_BYTES, options.alloc);
  }

  async close(): Promise<void> {
    await Promise.all([this.transport.close(), this.wholeBodies.close()]);
  }

  /** Drops every socket now (cancel): in-flight bodies error out instead of finishing. */
  async destroy(): Promise<void> {
    await Promise.all([this.transport.destroy(), this.wholeBodies.destroy()]);
  }
}
