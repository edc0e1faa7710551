import { createDecipheriv } from 'node:crypto';
import type { JobRequest } from '../../jobs/types.js';
import { withRetry } from '../../net/retry.js';
import { parseIv } from '../../playlist/keys.js';
import { GabeError, isGabeError, originStatus } from '../../service/errors.js';
import type { PlaylistSource } from './renditions.js';
import { OVERRIDE_KEY_URI } from './track-plan.js';

/**
 * AES-128 keys by URI, each fetched once per job however many segments share it (a 20,000-segment
 * stream usually has one key). A failed fetch is remembered too: every segment would fail the same way.
 */
export class KeyCache {
  private readonly keys = new Map<string, Promise<Buffer>>();

  constructor(private readonly fetchKey: (uri: string) => Promise<Buffer>) {}

  get(uri: string): Promise<Buffer> {
    let key = this.keys.get(uri);
    if (!key) {
      key = this.load(uri);
      this.keys.set(uri, key);
    }
    return key;
  }

  private async load(uri: string): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await this.fetchKey(uri);
    } catch (err) {
      if (isGabeError(err, 'CANCELLED')) throw err;
      const status = originStatus(err);
      const why = status ? `HTTP ${status}` : (err as Error).message;
      throw new GabeError('KEY', `the AES-128 key at ${uri} could not be fetched: ${why}`, {
        cause: err,
        details: { status, url: uri },
      });
    }
    if (data.length !== 16) {
      throw new GabeError('KEY', `the AES-128 key at ${uri} is ${data.length} bytes, not 16`, {
        details: { url: uri },
      });
    }
    return data;
  }
}

/** AES-128-CBC with PKCS#7 padding over the whole segment (RFC 8216 4.3.2.4). */
export function decryptAes128(data: Buffer, key: Buffer, iv: Buffer, what: string): Buffer {
  try {
    const decipher = createDecipheriv('aes-128-cbc', key, iv);
    return Buffer.concat([decipher.update(data), decipher.final()]);
  } catch (err) {
    throw decryptError(what, err);
  }
}

/** A segment AES-128-CBC would not decrypt (a wrong key or IV shows as bad padding at the end). */
export function decryptError(what: string, cause: unknown): GabeError {
  return new GabeError('KEY', `${what} could not be decrypted with its AES-128 key (wrong key or IV?)`, {
    cause,
  });
}

/**
 * A job's keys: the request's own key (OVERRIDE_KEY_URI, the form of an IV: 32 hex digits, validated
 * with the request) or each key URI fetched once, with retries.
 */
export function jobKeys(src: PlaylistSource, request: JobRequest): KeyCache {
  const { http, policy } = src;
  const { signal } = src.ctx;
  return new KeyCache(async (uri) => {
    if (uri === OVERRIDE_KEY_URI && request.key) return parseIv(request.key);
    // Not under max_speed: a key must not queue behind the segments that need it.
    const get = () => http.getBuffer(uri, { signal, maxBytes: 1024, bypassLimit: true });
    return (await withRetry(get, policy, { signal })).data;
  });
}
