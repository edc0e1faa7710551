import { request } from 'undici';
import type { JobResponse } from '../api/schemas.js';
import { isFinal } from '../jobs/types.js';
import { ErrorCodes, type ErrorKind } from '../service/error-codes.js';
import { GabeError } from '../service/errors.js';
import { progressReporter } from './progress.js';

export interface ClientOptions {
  server: string;
  apiKey?: string | undefined;
}

function headers(o: ClientOptions, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(o.apiKey ? { 'x-api-key': o.apiKey } : {}), ...extra };
}

/** Calls the service; a non-2xx answer becomes a GabeError carrying the service's own detail and code. */
export async function call<T>(
  o: ClientOptions,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<T> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(new URL(path, o.server), {
      method,
      headers: headers(o, body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new GabeError(
      'NETWORK',
      `cannot reach the Gabe service at ${o.server}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const text = await res.body.text();
  if (res.statusCode >= 400) throw serviceError(res.statusCode, text);
  return JSON.parse(text) as T;
}

/** The service's `{detail, code}` answer as an error the CLI prints. */
function serviceError(status: number, text: string): GabeError {
  type ErrorBody = { detail?: unknown; code?: string } | null;
  let e: ErrorBody = null;
  try {
    e = JSON.parse(text) as ErrorBody;
  } catch {
    // not JSON (a proxy's error page): shown as text
  }
  const detail = typeof e?.detail === 'string' ? e.detail : JSON.stringify(e?.detail ?? text.slice(0, 200));
  // The service's own code, so the CLI prints it once and rightly, not as a client-side BAD_REQUEST.
  const kind = e?.code?.startsWith('GABE_ERR_') ? (e.code.slice('GABE_ERR_'.length) as ErrorKind) : null;
  return new GabeError(kind && kind in ErrorCodes ? kind : 'BAD_REQUEST', `${detail} (HTTP ${status})`, {
    httpStatus: status,
  });
}

/** Reads a Server-Sent Events stream, calling `onEvent` per event until it ends or `stop` says so. */
async function readEvents(
  o: ClientOptions,
  path: string,
  onEvent: (event: string, data: string) => boolean | undefined,
): Promise<void> {
  const res = await request(new URL(path, o.server), {
    headers: headers(o, { accept: 'text/event-stream' }),
    bodyTimeout: 0,
  });
  if (res.statusCode >= 400) throw serviceError(res.statusCode, await res.body.text());
  let buffer = '';
  for await (const chunk of res.body) {
    buffer += (chunk as Buffer).toString('utf8');
    let end = buffer.indexOf('\n\n');
    while (end !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length > 0 && onEvent(event, data.join('\n')) === true) {
        res.body.destroy();
        return;
      }
      end = buffer.indexOf('\n\n');
    }
  }
}

/** Follows a job over SSE with a progress bar (or plain lines), resolving with its final state. */
export async function follow(o: ClientOptions, id: string, stream: NodeJS.WriteStream): Promise<JobResponse> {
  const reporter = progressReporter(stream);
  let last: JobResponse | null = null;
  try {
    await readEvents(o, `/job/${encodeURIComponent(id)}/events`, (event, data) => {
      if (event !== 'job') return false;
      last = JSON.parse(data) as JobResponse;
      if (last.status === 'PROCESSING') reporter.update(last);
      return isFinal(last.status);
    });
  } finally {
    reporter.stop();
  }
  return last ?? call<JobResponse>(o, 'GET', `/job/${encodeURIComponent(id)}`);
}

export function formatJobLine(j: JobResponse): string {
  const progress = j.status === 'PROCESSING' ? ` ${j.progress.toFixed(1)}%` : '';
  const tail =
    j.status === 'COMPLETED' ? j.result?.output_path : j.status === 'FAILED' ? j.error : j.original_url;
  return `${j.job_id}  ${j.type.padEnd(3)}  ${j.status.padEnd(10)}${progress}  ${tail ?? ''}`;
}
