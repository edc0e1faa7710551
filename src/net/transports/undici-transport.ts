/**
 * Direct HTTP/1.1 over undici's Agent and a dispatch handler of our own, for every request of a job
 * (bodies read whole and streamed). Bench-only (GABE_HTTP_TRANSPORT=undici, choose.ts):
 * it exists to measure the own client (h1-transport.ts) against undici on the same download
 * (docs/architecture.md, "HTTP stack").
 *
 * The limits are deadlines.ts's, as on the other transports: connect within connection_timeout, the
 * whole head (interim responses included) within connection_timeout of the request going out, the
 * head bytes and interim responses counted by HeadTally, the speed floor on the body's bytes (counted
 * per chunk: undici does not show us the socket whose counter we would read), and undici's own
 * timeouts and head overflow reported with deadlines.ts's errors. The destination guard: names are
 * resolved by the guard's lookup and the peer address of every new socket is checked once more.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { TransferWatch } from '../deadlines.js';
import { guardedLookup, literalRefusal, peerRefusal } from '../guard.js';
import { undiciAgentLimits, undiciLimitError, withLimits } from '../undici-limits.js';
import { addField } from './h1-head.js';
import { ResponseBody } from './response-body.js';
import type { DirectTransportOptions, RawRequest, RawResponse, Transport } from './transport.js';
import { abortError } from './transport.js';

/** undici's raw header pairs as fields by lower-case name, joined as H1Transport joins them (addField). */
function fieldsOf(raw: readonly Buffer[] | null): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  if (!raw) return headers;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    addField(headers, raw[i]!.toString('latin1').toLowerCase(), raw[i + 1]!.toString('latin1'));
  }
  return headers;
}

/** The length of a final response's body when its head gives one (RFC 9112 6.3). */
function bodyLength(method: string, status: number, headers: IncomingHttpHeaders): number | null {
  if (method === 'HEAD' || status === 204 || status === 304) return 0;
  if (headers['transfer-encoding'] !== undefined) return null;
  const cl = headers['content-length'];
  return typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : null;
}

/**
 * A body fed by undici's handler. Its chunks are views of a read buffer of their own, never reused:
 * one that arrives before the reader chooses how to read is kept as it is, without a copy.
 */
class UndiciBody extends ResponseBody {
  constructor(
    private readonly controller: Dispatcher.DispatchController,
    length: number | null,
  ) {
    super(length);
  }

  protected keep(src: Buffer, start: number, end: number): Buffer {
    return start === 0 && end === src.length ? src : src.subarray(start, end);
  }

  protected abort(error: Error): void {
    if (!this.done) this.controller.abort(error);
  }

  protected pauseReading(): void {
    this.controller.pause();
  }

  protected resumeReading(): void {
    this.controller.resume();
  }
}

/**
 * One request: the response promise until the head, then the body. The limits (head deadline and
 * size, interim responses, speed floor, undici's errors as deadlines.ts's) are withLimits's, around it.
 */
class ExchangeHandler implements Dispatcher.DispatchHandler {
  private body: UndiciBody | null = null;
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  private readonly onAbort = () => {
    const err = abortError(this.req.signal!);
    if (this.controller) this.controller.abort(err);
    else this.settle(err);
  };

  constructor(
    private readonly req: RawRequest,
    private readonly resolve: (res: RawResponse) => void,
    private readonly reject: (err: Error) => void,
  ) {
    req.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private settle(err: Error | null): void {
    this.req.signal?.removeEventListener('abort', this.onAbort);
    if (this.body) this.body.finish(err);
    else if (!this.settled && err) this.reject(err);
    this.settled = true;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) {
      controller.abort(new Error('the request was settled before it started'));
      return;
    }
    if (this.req.signal?.aborted) controller.abort(abortError(this.req.signal));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) return;
    const headers = fieldsOf((controller as { rawHeaders?: Buffer[] | null }).rawHeaders ?? null);
    const body = new UndiciBody(controller, bodyLength(this.req.method, statusCode, headers));
    this.body = body;
    this.settled = true;
    this.resolve({ statusCode, headers, body });
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body?.push(chunk);
  }

  onResponseEnd(): void {
    this.settle(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.settle(error);
  }
}

/** HTTP/1.1 over undici's Agent, with the limits and guard of the other transports; see the file comment. */
export class UndiciTransport implements Transport {
  private readonly agent: Agent;
  private readonly dispatcher: Dispatcher;
  private readonly watch: TransferWatch;

  constructor(private readonly options: DirectTransportOptions) {
    this.watch = new TransferWatch(options);
    const { timeoutMs, guard } = options;
    const inner = buildConnector({
      timeout: timeoutMs,
      ...(guard ? { lookup: guardedLookup(guard) } : {}),
    } as buildConnector.BuildOptions);
    const connect: buildConnector.connector = (opts, callback) =>
      inner(opts, (err, socket) => {
        if (err || !socket) return callback(undiciLimitError(err, this.watch.limits, false), null);
        const refused = guard ? peerRefusal(socket as Socket, guard, opts.hostname) : null;
        if (refused) {
          socket.destroy();
          return callback(refused, null);
        }
        callback(null, socket);
      });
    this.agent = new Agent({ ...undiciAgentLimits(timeoutMs), connections: options.connections, connect });
    this.dispatcher = withLimits(this.agent, this.watch);
  }

  request(url: URL, req: RawRequest): Promise<RawResponse> {
    const { guard } = this.options;
    const refused = guard ? literalRefusal(url, guard) : null;
    if (refused) return Promise.reject(refused);
    if (req.signal?.aborted) return Promise.reject(abortError(req.signal));
    return new Promise<RawResponse>((resolve, reject) => {
      const handler = new ExchangeHandler(req, resolve, reject);
      this.dispatcher.dispatch(
        {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: req.method,
          headers: req.headers,
          body: req.body ?? null,
        },
        handler,
      );
    });
  }

  async destroy(): Promise<void> {
    await this.agent.destroy().catch(() => {});
  }

  async close(): Promise<void> {
    await this.destroy();
  }
}
