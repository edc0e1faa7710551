import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyReply, LogController } from 'fastify';
import type { Redis } from 'ioredis';
import secureJsonParse from 'secure-json-parse';
import { apiKeyHook } from '../api/auth.js';
import { describeTrust, trustProxyOption } from '../api/client-ip.js';
import { checkDestinations, downloadRoutes } from '../api/downloads.js';
import { eventRoutes } from '../api/events.js';
import { fileRoutes } from '../api/files.js';
import { healthRoutes } from '../api/health.js';
import { hostCheckHook } from '../api/hosts.js';
import { jobRoutes } from '../api/jobs.js';
import { metricsRoutes } from '../api/metrics.js';
import { probeRoutes } from '../api/probe.js';
import { budgetHook, type RateLimitHook } from '../api/rate-limit.js';
import { isWebPath, webRoutes } from '../api/web.js';
import type { JobStore } from '../jobs/job-store.js';
import type { JobQueue } from '../jobs/queue.js';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import { redactCredentials } from '../net/redact.js';
import type { ResultStore } from '../storage/results.js';
import { VERSION } from '../version.js';
import type { Config } from './config.js';
import { type ErrorCode, GabeError, isGabeError } from './errors.js';
import type { Logger } from './log.js';

export const BODY_LIMIT = 1024 * 1024;

export interface AppDeps {
  config: Config;
  store: JobStore;
  storeInfo: { kind: 'sqlite' | 'redis'; path: string };
  queue: JobQueue;
  results: ResultStore;
  ffmpeg: FfmpegTools;
  log: Logger;
  /** In a cluster: the rate limit counts in Redis, so the budget holds across API nodes. */
  redis?: Redis;
}

interface FieldError {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** FastAPI's 422 shape (`detail: [{loc, msg, type}]`), which the original clients already parse. */
function fieldErrors(err: FastifyError): FieldError[] {
  const context = err.validationContext ?? 'body';
  const out: FieldError[] = [];
  for (const v of err.validation ?? []) {
    const path = v.instancePath.split('/').filter(Boolean);
    const params = v.params as Record<string, unknown>;
    if (v.keyword === 'additionalProperties') {
      for (const name of (params['additionalProperties'] as string[] | undefined) ?? []) {
        out.push({ loc: [context, ...path, name], msg: 'unknown field', type: 'extra_forbidden' });
      }
    } else if (v.keyword === 'required') {
      const names =
        (params['requiredProperties'] as string[] | undefined) ??
        (params['missingProperty'] ? [String(params['missingProperty'])] : []);
      for (const name of names)
        out.push({ loc: [context, ...path, name], msg: 'field required', type: 'missing' });
    } else if (v.keyword === 'boolean' || /\/anyOf\/\d+$/.test(v.schemaPath)) {
      // TypeBox reports each failed branch of a union too; the union's own line says it once.
    } else {
      out.push({ loc: [context, ...path], msg: v.message ?? 'invalid', type: v.keyword });
    }
  }
  if (out.length === 0) out.push({ loc: [context], msg: err.message, type: 'invalid' });
  return out;
}

function fastifyErrorToGabe(err: FastifyError): GabeError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GabeError('BODY_TOO_LARGE', `request body is larger than ${BODY_LIMIT} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GabeError('BAD_REQUEST', 'send the request body as application/json', { httpStatus: 415 });
    default:
      if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
        return new GabeError('BAD_REQUEST', err.message, { httpStatus: err.statusCode });
      }
      return new GabeError('INTERNAL', 'internal error', { cause: err });
  }
}

/**
 * Fastify's own JSON parser answers "Body is not valid JSON" for every refusal, even well-formed JSON
 * refused for a `__proto__` or `constructor.prototype` key (prototype poisoning). This one keeps
 * the same protection and says which it was.
 */
function parseJsonBody(
  _req: unknown,
  body: string,
  done: (err: Error | null, value?: unknown) => void,
): void {
  if (body.length === 0) {
    done(new GabeError('VALIDATION', 'request body is empty; send a JSON object'));
    return;
  }
  try {
    done(null, secureJsonParse.parse(body));
  } catch (err) {
    const why = (err as Error).message;
    const poisoned = /prototype property/i.test(why);
    done(
      new GabeError(
        'VALIDATION',
        poisoned
          ? `request body is refused: it has a forbidden key (__proto__ or constructor.prototype): ${why}`
          : `request body is not valid JSON: ${why}`,
      ),
    );
  }
}

/** Router-level refusals (a malformed percent-escape, a path parameter too long) in Gabe's shape. */
function frameworkError(error: FastifyError, _req: unknown, reply: FastifyReply): void {
  const status =
    error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  const what =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : 'the URL is malformed';
  void reply
    .code(status)
    .send({ detail: `${what} (${error.code})`, code: 'GABE_ERR_BAD_REQUEST' satisfies ErrorCode });
}

export type App = Awaited<ReturnType<typeof buildApp>>;
type FastifyApp = ReturnType<typeof createFastify>;
type Limits = { submissions: RateLimitHook; probes: RateLimitHook };

export async function buildApp(deps: AppDeps) {
  const trust = describeTrust(deps.config.trust_proxy);
  if (trust) deps.log.info(trust);
  const app = createFastify(deps);
  addGuards(app, deps);
  const limits = await addRateLimits(app, deps.config, deps.redis);
  await addDocs(app);
  await addRoutes(app, deps, limits);
  return app;
}

/**
 * A worker's own small server (`gabe worker --port`): /health and /metrics only, for probes and
 * Prometheus; jobs are submitted and followed through the API nodes.
 */
export async function buildWorkerApp(deps: AppDeps) {
  const app = createFastify(deps);
  await addServiceRoutes(app, deps);
  return app;
}

/** /metrics and /health: every process has them, API node or worker. */
async function addServiceRoutes(app: FastifyApp, deps: AppDeps): Promise<void> {
  const { queue, store, config, results, storeInfo, ffmpeg } = deps;
  await app.register(metricsRoutes, { queue, store });
  await app.register(healthRoutes, { config, store, storeInfo, queue, results, ffmpeg });
}

/** The Fastify instance with Gabe's JSON body parser and its one error shape for every refusal. */
function createFastify(deps: AppDeps) {
  const app = Fastify({
    loggerInstance: deps.log,
    // Per-request lines would flood video_downloader.log under polling clients; jobs log their own.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    trustProxy: trustProxyOption(deps.config.trust_proxy),
    routerOptions: { maxParamLength: 200 },
    frameworkErrors: frameworkError,
    ajv: { customOptions: { removeAdditional: false } },
  })
    .setValidatorCompiler(TypeBoxValidatorCompiler)
    .withTypeProvider<TypeBoxTypeProvider>();

  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody);

  app.setErrorHandler((error: FastifyError, req, reply) => {
    if (error.validation) {
      return reply
        .code(422)
        .send({ detail: fieldErrors(error), code: 'GABE_ERR_VALIDATION' satisfies ErrorCode });
    }
    const err = isGabeError(error) ? error : fastifyErrorToGabe(error);
    if (err.httpStatus >= 500) req.log.error({ err: error, code: err.code }, 'request failed');
    if (err.retryAfter !== undefined) reply.header('retry-after', String(Math.ceil(err.retryAfter)));
    // A probe's or a submission's error may quote the URL it was given, credentials and all.
    return reply.code(err.httpStatus).send({ detail: redactCredentials(err.message), code: err.code });
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ detail: `no route for ${req.method} ${req.url.split('?')[0]}`, code: 'GABE_ERR_NOT_FOUND' }),
  );
  return app;
}

/** The host check and the API key check, on every request. */
function addGuards(app: FastifyApp, deps: AppDeps): void {
  app.decorateRequest('owner', null);
  // Before the key check: a rebinding page must learn nothing, not even that a key is needed.
  const hostCheck = hostCheckHook(deps.config);
  if (hostCheck) app.addHook('onRequest', hostCheck);
  else if (!deps.config.api_keys && deps.config.allowed_hosts === null)
    deps.log.warn(
      `listening on ${deps.config.host} with neither api_keys nor allowed_hosts: any web page a user of this network opens could drive the API through DNS rebinding`,
    );
  const auth = apiKeyHook(deps.config, { isPublic: isWebPath });
  if (auth) app.addHook('onRequest', auth);
}

async function addRateLimits(app: FastifyApp, config: Config, redis?: Redis): Promise<Limits> {
  // Submissions and probes only: polling GET /job must never be throttled. `/probe` has a budget of
  // its own of the same size: it makes the service fetch from an origin, but a client that probes
  // before each submission should not see its submissions halved.
  let limits: Limits = { submissions: undefined, probes: undefined };
  if (config.rate_limit_per_minute > 0) {
    await app.register(fastifyRateLimit, {
      global: false,
      max: config.rate_limit_per_minute,
      timeWindow: 60_000,
      keyGenerator: (req) => req.owner ?? req.ip,
      ...(redis ? { redis, nameSpace: `${config.queue.prefix}:ratelimit:`, skipOnError: true } : {}),
    });
    // An options object gives each its own counter store; the Redis store names a child after the
    // route, which createRateLimit does not have, so the budget's name goes into the key instead.
    const budget = (name: string) =>
      budgetHook(app.createRateLimit({ keyGenerator: (req) => `${name}:${req.owner ?? req.ip}` }), name);
    limits = { submissions: budget('submissions'), probes: budget('probes') };
  }
  return limits;
}

/** OpenAPI at /openapi.json and Swagger UI at /docs, built from the route schemas. */
async function addDocs(app: FastifyApp): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Gabe',
        version: VERSION,
        description:
          'Downloads HLS (M3U8) streams and direct MP4 URLs into finished MP4 files. Every error is JSON ' +
          '`{ "detail": ..., "code": "GABE_ERR_..." }`.',
      },
      tags: [
        { name: 'downloads', description: 'Start jobs' },
        { name: 'jobs', description: 'Follow, list and cancel jobs' },
        { name: 'service', description: 'Health' },
      ],
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

async function addRoutes(app: FastifyApp, deps: AppDeps, limits: Limits): Promise<void> {
  await app.register(downloadRoutes, {
    queue: deps.queue,
    config: deps.config,
    rateLimit: limits.submissions,
  });
  const { queue, store, config, results } = deps;
  await app.register(jobRoutes, { queue, store, config, results });
  await app.register(fileRoutes, { store, config, results });
  await app.register(eventRoutes, { queue, store, config });
  await app.register(probeRoutes, {
    config: deps.config,
    guard: (url: string) => checkDestinations({ url }, deps.config),
    rateLimit: limits.probes,
  });
  await app.register(webRoutes);
  await addServiceRoutes(app, deps);
}
