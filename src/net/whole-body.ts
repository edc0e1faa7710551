/**
 * Reading a response body whole (segments, playlists, keys): into one buffer when the transport can
 * (HttpBody.collect: H1Transport copies the bytes straight into `alloc`'s buffer), else chunk by chunk.
 * More than `max` bytes is refused, and a body shorter than its Content-Length fails, retryably: a
 * truncated segment must never pass for a whole one.
 */
import { GabeError, toGabeError } from '../service/errors.js';
import type { HttpBody } from './transports/transport.js';

export async function readWholeBody(
  url: string,
  res: { body: HttpBody; contentLength: number | null },
  max: number,
  alloc: ((size: number) => Buffer) | undefined,
): Promise<{ chunks: Buffer[]; length: number }> {
  let chunks: Buffer[] = [];
  let total = 0;
  try {
    if (res.body.collect) {
      chunks = await res.body.collect(max, alloc).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ERR_BODY_TOO_LARGE') {
          throw new GabeError('PLAYLIST_TOO_LARGE', `${url} is larger than ${max} bytes`);
        }
        throw err;
      });
      for (const c of chunks) total += c.length;
    } else
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > max) {
          res.body.destroy();
          throw new GabeError('PLAYLIST_TOO_LARGE', `${url} is larger than ${max} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
  } catch (err) {
    throw toGabeError(err);
  }
  if (res.contentLength !== null && total !== res.contentLength) {
    throw new GabeError('TRUNCATED', `${url}: got ${total} of ${res.contentLength} bytes`);
  }
  return { chunks, length: total };
}
