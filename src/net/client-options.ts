/** How a job's HttpClient (net/client.ts) and its transports (net/transports/choose.ts) are set up. */
import type { GuardOptions } from './guard.js';
import type { RateLimiter } from './rate-limiter.js';

export interface HttpClientOptions {
  /**
   * Connect, the whole response head, a trailer section, and the longest gap between two reads, ms
   * (config connection_timeout × 1000: deadlines.ts transferLimits).
   */
  timeoutMs: number;
  /** Speed floor, bytes/s over `lowSpeedTimeMs` (config low_speed_limit); 0 = none. Default 1024. */
  lowSpeedLimit?: number;
  /** Window of the speed floor, ms (config low_speed_time × 1000). Default 30 s. */
  lowSpeedTimeMs?: number;
  proxy?: string | null | undefined;
  /**
   * Whose proxy it is. 'config': the operator's, trusted, connected to wherever it is (it may sit on
   * loopback). 'request' (the default): a job's own, which the destination guard resolves and checks
   * when it connects to it, as it does every hop (unless allow_private_networks).
   */
  proxyFrom?: 'config' | 'request' | undefined;
  /** Keep-alive sockets per origin; sized to the job's concurrency. */
  connections?: number;
  maxRedirects?: number;
  /**
   * false: the destination guard (guard.ts) refuses every hop to loopback, private, link-local and
   * other special addresses, checked at connect time. Required, so every caller decides: the service
   * passes config.allow_private_networks.
   */
  allowPrivateNetworks: boolean;
  /** Seams for tests (injected DNS, allowed addresses); never from config. */
  guard?: GuardOptions;
  /** Sent with every request (config and job `headers`, lower-case names); a call's own win. */
  headers?: Record<string, string>;
  /**
   * The job's URL: its `user:pass@` is sent as Basic auth to every request on its origin (playlists,
   * segments, keys, the file), and to no other (net/credentials.ts).
   */
  jobUrl?: string | null | undefined;
  /**
   * The job's speed limit (max_speed under max_total_speed, net/rate-limiter.ts): every body this
   * client returns is read no faster than it allows. null/absent: no limit.
   */
  limiter?: RateLimiter | null | undefined;
}
