/**
 * What every transport is to HttpClient (net/client.ts): a request in, a response head and a body
 * out. Which one carries a request is net/transports/choose.ts's decision.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { LimitOptions } from '../deadlines.js';
import type { GuardOptions } from '../guard.js';

/** One way of sending a request (the own HTTP/1.1 client, node:http, undici). */
export interface Transport {
  request(url: URL, req: RawRequest): Promise<RawResponse>;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/** What HttpClient needs of a response body: every transport's bodies have it. */
export interface HttpBody extends AsyncIterable<unknown> {
  destroy(error?: Error): unknown;
  /** Reads and discards the rest (a redirect's or an error's small body), so the socket can be reused. */
  dump(): Promise<void>;
  /** The whole body at once, refusing more than `limit` bytes (H1Transport: without a buffer per read). */
  collect?(limit: number, alloc?: (size: number) => Buffer): Promise<Buffer[]>;
}

export interface RawResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: HttpBody;
}

export interface RawRequest {
  method: 'GET' | 'HEAD' | 'POST';
  headers: Record<string, string>;
  body?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** `timeoutMs`: connect, the whole head, trailers, the gap between reads; with the speed floor. */
export interface DirectTransportOptions extends LimitOptions {
  /** Keep-alive sockets per origin. */
  connections: number;
  /** null: no destination guard (allow_private_networks). */
  guard: GuardOptions | null;
}

/** Bodies larger than this are not read to the end to save a socket: the socket is closed instead. */
export const DUMP_LIMIT = 128 * 1024;

export function codeError(message: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** The error of an aborted request: the signal's own AbortError, or one like it. */
export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return Object.assign(new Error('the request was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}
