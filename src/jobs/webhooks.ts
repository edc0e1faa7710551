import { createHmac, randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { JobResponse } from '../api/schemas.js';
import { HttpClient } from '../net/client.js';
import { transferLimits } from '../net/deadlines.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetry } from '../net/retry.js';
import type { Config } from '../service/config.js';
import { toGabeError } from '../service/errors.js';
import type { Logger } from '../service/log.js';
import type { JobEvents } from './queue.js';
import { isFinal, type Job } from './types.js';

export const SIGNATURE_HEADER = 'x-gabe-signature';
export const TIMESTAMP_HEADER = 'x-gabe-timestamp';

/**
 * The signature covers the timestamp and the body (`${timestamp}.${body}`), as Stripe's does, so a
 * captured delivery cannot be replayed later with a fresh timestamp.
 */
export function signPayload(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export const WEBHOOK_RETRY: RetryPolicy = {
  ...DEFAULT_RETRY_POLICY,
  maxRetries: 5,
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
};

/**
 * POSTs a job's final state to its `callback_url`: signed with HMAC-SHA256 when `webhook_secret` is
 * set, retried with back-off on network errors, 408, 429 and 5xx, and sent through the same
 * destination guard as downloads. Deliveries live in memory: a restart drops the ones still retrying.
 */
export class WebhookSender {
  private readonly http: HttpClient;
  private readonly controller = new AbortController();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    /** The job events of this process only, so that a cluster sends each webhook once. */
    private readonly events: EventEmitter<JobEvents>,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly present: (job: Job) => JobResponse,
    private readonly policy: RetryPolicy = WEBHOOK_RETRY,
  ) {
    this.http = new HttpClient({
      ...transferLimits(config),
      proxy: config.proxy,
      proxyFrom: 'config',
      allowPrivateNetworks: config.allow_private_networks,
    });
    events.on('job', this.onJob);
  }

  private readonly onJob = (job: Job) => {
    const url = job.request.callback_url;
    if (!url || !isFinal(job.status)) return;
    const delivery = this.deliver(url, job).finally(() => this.pending.delete(delivery));
    this.pending.add(delivery);
  };

  private async deliver(url: string, job: Job): Promise<void> {
    const body = JSON.stringify(this.present(job));
    const id = randomUUID();
    const log = this.log.child({ job_id: job.id, delivery: id });
    try {
      await withRetry(
        async () => {
          const timestamp = String(Math.floor(Date.now() / 1000));
          const headers: Record<string, string> = {
            'content-type': 'application/json',
            'x-gabe-event': `job.${job.status.toLowerCase()}`,
            'x-gabe-delivery': id,
            [TIMESTAMP_HEADER]: timestamp,
          };
          if (this.config.webhook_secret) {
            headers[SIGNATURE_HEADER] = signPayload(this.config.webhook_secret, timestamp, body);
          }
          await this.http.post(url, body, { headers, signal: this.controller.signal });
        },
        this.policy,
        {
          signal: this.controller.signal,
          onRetry: (err, attempt, delayMs) =>
            log.warn({ err: err.message, attempt, delayMs }, 'webhook failed; retrying'),
        },
      );
      log.info({ url }, 'webhook delivered');
    } catch (raw) {
      const err = toGabeError(raw);
      if (err.kind !== 'CANCELLED')
        log.error({ url, err: err.message, code: err.code }, 'webhook not delivered');
    }
  }

  /** Waits for deliveries in flight (tests, shutdown), or abandons them with `abort`. */
  async close(abort = true): Promise<void> {
    this.events.off('job', this.onJob);
    if (abort) this.controller.abort();
    await Promise.allSettled([...this.pending]);
    await this.http.destroy();
  }
}
