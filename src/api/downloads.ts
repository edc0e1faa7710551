import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { clipRange } from '../jobs/clip-range.js';
import type { JobQueue } from '../jobs/queue.js';
import type { JobRequest, JobType } from '../jobs/types.js';
import { checkUrl } from '../net/client.js';
import { checkUrlDestination, resolveAndCheck } from '../net/guard.js';
import { parseSpeed } from '../net/speed.js';
import { skipRules } from '../pipeline/hls/skip-rules.js';
import type { Config } from '../service/config.js';
import { nameFromUrl, sanitizeName } from '../storage/names.js';
import { presentJob } from './present.js';
import type { RateLimitHook } from './rate-limit.js';
import { ErrorSchema, errorResponses, HlsDownloadBody, JobSchema, Mp4DownloadBody } from './schemas.js';

export interface DownloadRoutesOptions {
  queue: JobQueue;
  config: Config;
  /** The submission budget, one for both routes (undefined: no rate limit). */
  rateLimit?: RateLimitHook;
}

/**
 * The destination guard at submission, so a forbidden URL is a 400 now rather than a failed job later.
 * The URL: IP literals in any spelling and local-only names, then DNS (a name that does not resolve is
 * not refused here; the job fails with a network error). A proxy named in the request is the caller's
 * choice, but it could point into our network too (the job would then connect to it), so its host is
 * checked the same way; the config proxy is the operator's and trusted. This check is for a clear,
 * early answer: the job checks the proxy again when it connects to it (net/transports/proxy-connect.ts), since
 * its name may resolve elsewhere by then.
 */
export async function checkDestinations(
  request: Pick<JobRequest, 'url' | 'proxy' | 'callback_url'>,
  config: Config,
): Promise<void> {
  if (config.allow_private_networks) return;
  checkUrlDestination(request.url);
  const checks = [resolveAndCheck(new URL(request.url).hostname)];
  // A webhook is a fetch the service makes too: the same guard keeps it out of the local network.
  if (request.callback_url) {
    checkUrlDestination(request.callback_url);
    checks.push(resolveAndCheck(new URL(request.callback_url).hostname, {}, { what: 'callback_url' }));
  }
  if (request.proxy) {
    let proxyHost: string | null = null;
    try {
      proxyHost = new URL(request.proxy).hostname;
    } catch {
      // Not a URL: the job reports GABE_ERR_PROXY, as before.
    }
    // resolveAndCheck checks literals and local names first, then DNS.
    if (proxyHost) checks.push(resolveAndCheck(proxyHost, {}, { what: 'proxy' }));
  }
  await Promise.all(checks);
}

export const downloadRoutes: FastifyPluginAsyncTypebox<DownloadRoutesOptions> = async (
  app,
  { queue, config, rateLimit },
) => {
  const submit = async (type: JobType, request: JobRequest, ip: string, owner: string | null) => {
    checkUrl(request.url);
    if (request.callback_url) checkUrl(request.callback_url);
    // Read once here so a bad clip or speed is a 422 now rather than a failed job later.
    clipRange(request);
    parseSpeed(request.max_speed);
    skipRules(request);
    await checkDestinations(request, config);
    const videoName = request.video_name ? sanitizeName(request.video_name) : nameFromUrl(request.url);
    return presentJob(await queue.submit({ type, request, clientIp: ip, videoName, owner }));
  };
  // The same hook on both routes: one budget per client, whichever route a submission takes.
  const limited = rateLimit ? { onRequest: rateLimit } : {};

  app.post(
    '/download/',
    {
      ...limited,
      schema: {
        summary: 'Start an HLS (M3U8) download',
        description:
          'Queues a job for a master or media playlist URL. Poll GET /job/{job_id} for progress and the result.',
        tags: ['downloads'],
        body: HlsDownloadBody,
        response: { 200: JobSchema, 400: ErrorSchema, 501: ErrorSchema, ...errorResponses },
      },
    },
    async (req) => submit('hls', req.body, req.ip, req.owner),
  );

  app.post(
    '/download/mp4',
    {
      ...limited,
      schema: {
        summary: 'Start a direct MP4 download',
        description: 'Queues a job that streams the file at `url` to output_path as MP4.',
        tags: ['downloads'],
        body: Mp4DownloadBody,
        response: { 200: JobSchema, 400: ErrorSchema, ...errorResponses },
      },
    },
    async (req) => submit('mp4', req.body, req.ip, req.owner),
  );
};
