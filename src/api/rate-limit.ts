/**
 * The per-client budgets of rate_limit_per_minute (per API key, else per IP) as onRequest hooks. One
 * hook per budget, shared by every route that spends it: @fastify/rate-limit gives each route
 * configured through `config.rateLimit` a store of its own, which let the two download routes allow
 * twice the limit between them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GabeError } from '../service/errors.js';

/** An onRequest hook that counts a request against one budget, or undefined when limits are off. */
export type RateLimitHook = ((req: FastifyRequest, reply: FastifyReply) => Promise<void>) | undefined;

/** What `app.createRateLimit(options)` returns: one counter store, keyed by the plugin's keyGenerator. */
export type RateCheck = ReturnType<FastifyInstance['createRateLimit']>;

/**
 * Counts the request against `check`'s budget; beyond it, 429 GABE_ERR_RATE_LIMITED with Retry-After.
 * The x-ratelimit-* headers are the ones @fastify/rate-limit's own hook sends.
 */
export function budgetHook(check: RateCheck, what: string): NonNullable<RateLimitHook> {
  return async (req, reply) => {
    const r = await check(req);
    if (r.isAllowed) return;
    reply.header('x-ratelimit-limit', r.max);
    reply.header('x-ratelimit-remaining', r.remaining);
    reply.header('x-ratelimit-reset', r.ttlInSeconds);
    if (!r.isExceeded) return;
    const unit = r.ttlInSeconds === 1 ? 'second' : 'seconds';
    throw new GabeError(
      'RATE_LIMITED',
      `too many ${what}: at most ${r.max} a minute; retry in ${r.ttlInSeconds} ${unit}`,
      { retryAfter: r.ttlInSeconds },
    );
  };
}
