/**
 * undici's own limits, for the transports built on it (the proxied one, and the bench-only direct
 * one): its options set from deadlines.ts's numbers, and its errors turned into deadlines.ts's, so
 * that a request fails the same way whichever transport carried it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  HeadTally,
  headOverflowError,
  headTimeoutError,
  idleTimeoutError,
  MAX_HEAD_BYTES,
  parsedHeadBytes,
  type TransferLimits,
  type TransferWatch,
  trailerOverflowError,
  type Watch,
} from './deadlines.js';

/** The Agent options that carry the limits; the head deadline and speed floor are TransferWatch's. */
export function undiciAgentLimits(timeoutMs: number) {
  return {
    keepAliveTimeout: 30_000,
    // A backstop only: the head deadline is the watch's, which a 1xx does not start over.
    headersTimeout: 2 * timeoutMs,
    // The longest gap between two body chunks: a stalled transfer fails after connection_timeout
    // instead of hanging forever.
    bodyTimeout: timeoutMs,
    // One limit for every transport; undici's own default is 16 KB.
    maxHeaderSize: MAX_HEAD_BYTES,
  };
}

/** undici's own timeouts and head limit, set to these limits, as the errors the other transports give. */
export function undiciLimitError(err: Error | null, limits: TransferLimits, inBody: boolean): Error {
  if (!err) return new Error('no socket');
  switch ((err as NodeJS.ErrnoException).code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return idleTimeoutError(limits.timeoutMs);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return headTimeoutError(limits.timeoutMs);
    case 'UND_ERR_HEADERS_OVERFLOW':
      return inBody ? trailerOverflowError() : headOverflowError();
    default:
      return err;
  }
}

/**
 * deadlines.ts's limits on one undici request, as a handler around undici's own: the head deadline
 * from the request going out (undici's headersTimeout starts over with every 1xx), the interim
 * responses counted and their bytes added up, and the body's bytes counted for the speed floor. The
 * undici transports count bytes per chunk: undici does not show us the socket whose counter we would read.
 * undici's own timeouts and head limit (set from the same numbers, undiciAgentLimits) fail with
 * deadlines.ts's errors, as on the other transports.
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

/** `dispatcher` with deadlines.ts's limits on every request it carries (LimitsHandler). */
export function withLimits(dispatcher: Dispatcher, watches: TransferWatch): Dispatcher {
  return dispatcher.compose(
    (dispatch) => (opts, handler) => dispatch(opts, new LimitsHandler(watches, handler)),
  );
}
