import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** SHA-256 of the caller's API key, or null when the service runs without keys. */
    owner: string | null;
  }
}

/** Jobs record a hash of their key: a leaked database does not leak working keys. */
export function ownerOf(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Routes a monitor or load balancer must reach without a key. */
const PUBLIC_ROUTES = new Set(['/health']);

/** The web page loads before it knows a key (it then asks for one), so its files are public. */
export interface AuthOptions {
  isPublic?: (url: string) => boolean;
}

function presentedKey(req: FastifyRequest): string | null {
  const auth = req.headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m?.[1] ?? null;
  }
  const header = req.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  // Browsers cannot set headers on EventSource or on a download link: GET may carry ?api_key=.
  if (req.method === 'GET' || req.method === 'HEAD') {
    const q = new URL(req.url, 'http://x').searchParams.get('api_key');
    if (q) return q;
  }
  return null;
}

/**
 * With `api_keys` set, every route but /health needs `Authorization: Bearer KEY` or `X-API-Key: KEY`.
 * Keys are compared by their SHA-256, so the lookup time says nothing about how close a guess was.
 * Returns the onRequest hook, or null when the service runs without keys.
 */
export function apiKeyHook(
  config: Config,
  options: AuthOptions = {},
): ((req: FastifyRequest, reply: FastifyReply) => Promise<void>) | null {
  if (!config.api_keys) return null;
  const known = new Set(config.api_keys.map(ownerOf));
  return async (req, reply) => {
    if (PUBLIC_ROUTES.has(req.url.split('?')[0] ?? '') || options.isPublic?.(req.url)) return;
    const key = presentedKey(req);
    const owner = key === null ? null : ownerOf(key);
    if (owner === null || !known.has(owner)) {
      reply.header('www-authenticate', 'Bearer');
      throw new GabeError(
        'UNAUTHORIZED',
        key === null
          ? 'an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>'
          : 'the API key is not valid',
      );
    }
    req.owner = owner;
  };
}
