/**
 * Wires a cluster process (config queue.redis_url): an API node, a worker, or both, sharing jobs through
 * Redis (RedisJobStore + BullMQ) and finished files through S3 or a shared output_path.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { presentJob } from '../api/present.js';
import { scheduleCleanup } from '../jobs/cleanup.js';
import { ClusterBus } from '../jobs/cluster-bus.js';
import { BULL_QUEUE_NAME, ClusterQueue, type QueuedJob } from '../jobs/cluster-queue.js';
import { scheduleReconcile } from '../jobs/cluster-reconcile.js';
import { ClusterWorker } from '../jobs/cluster-worker.js';
import type { JobEvents } from '../jobs/queue.js';
import { RedisJobStore } from '../jobs/redis-store.js';
import type { JobType } from '../jobs/types.js';
import { WebhookSender } from '../jobs/webhooks.js';
import { type FfmpegTools, locateFfmpeg } from '../media/ffmpeg/locate.js';
import { redactCredentials } from '../net/redact.js';
import type { Downloader } from '../pipeline/context.js';
import { hlsDownloader } from '../pipeline/hls/job.js';
import { mp4Downloader } from '../pipeline/mp4/job.js';
import { createResultStore } from '../storage/choose.js';
import type { ResultStore } from '../storage/results.js';
import { type App, buildApp, buildWorkerApp } from './app.js';
import type { Config } from './config.js';
import { GabeError } from './errors.js';
import { createLogger, type Logger } from './log.js';

export interface ClusterOptions {
  /** Serve the HTTP API (`gabe serve`); false = a worker answering only /health and /metrics. */
  api: boolean;
  /** Run jobs in this process (`gabe worker`, or `gabe serve` without --no-worker). */
  worker: boolean;
  /** Jobs this process runs at once (default: max_concurrent_downloads). */
  concurrency?: number;
  log?: Logger;
  ffmpeg?: FfmpegTools;
  downloaders?: Partial<Record<JobType, Downloader>>;
  results?: ResultStore;
}

export interface ClusterService {
  app: App;
  config: Config;
  store: RedisJobStore;
  queue: ClusterQueue;
  worker: ClusterWorker | null;
  results: ResultStore;
  ffmpeg: FfmpegTools;
  log: Logger;
  close(): Promise<void>;
}

/** ioredis waits through a Redis restart (commands queue until it is back) rather than failing jobs. */
export function connectRedis(url: string, log: Logger, name: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, connectionName: name });
  let lastWarn = 0;
  redis.on('error', (err: Error) => {
    if (Date.now() - lastWarn < 5000) return;
    lastWarn = Date.now();
    log.warn({ err: err.message, redis: redactCredentials(url) }, 'Redis connection error; retrying');
  });
  return redis;
}

export async function createClusterService(config: Config, options: ClusterOptions): Promise<ClusterService> {
  const url = config.queue.redis_url;
  if (!url)
    throw new GabeError(
      'CONFIG',
      'a cluster process needs queue.redis_url (GABE_QUEUE=\'{"redis_url":"redis://host:6379"}\')',
    );
  const log = options.log ?? createLogger({ logPath: config.log_path });
  const ffmpeg = options.ffmpeg ?? (await locateFfmpeg({ ffmpegPath: config.ffmpeg_path }));
  if (ffmpeg.warning && options.worker) log.warn(ffmpeg.warning);
  for (const dir of [config.output_path, config.temp_path]) mkdirSync(dir, { recursive: true });
  const prefix = config.queue.prefix;
  const redis = connectRedis(url, log, `gabe-${options.api ? 'api' : 'worker'}`);
  const subscriber = connectRedis(url, log, 'gabe-events');
  const store = new RedisJobStore(redis, prefix);
  const results = options.results ?? (await createResultStore(config, log));
  const local = new EventEmitter<JobEvents>();
  const bus = new ClusterBus(redis, subscriber, prefix, log);
  await bus.start();
  bus.publishFrom(local);
  const bull = new Queue<QueuedJob>(BULL_QUEUE_NAME, { connection: redis, prefix: `${prefix}:bull` });
  const blocking = options.worker ? connectRedis(url, log, 'gabe-worker-blocking') : null;
  const worker = blocking
    ? new ClusterWorker({
        store,
        bus,
        connection: blocking,
        config,
        ffmpeg,
        log,
        results,
        local,
        concurrency: options.concurrency ?? config.max_concurrent_downloads,
        downloaders: { mp4: mp4Downloader, hls: hlsDownloader, ...options.downloaders },
      })
    : null;
  const queue = new ClusterQueue({ store, bull, bus, config, log, local, ...(worker ? { worker } : {}) });
  const storeInfo = { kind: 'redis' as const, path: redactCredentials(url) };
  const appDeps = { config, store, storeInfo, queue, results, ffmpeg, log, redis };
  const app = options.api ? await buildApp(appDeps) : await buildWorkerApp(appDeps);
  const webhooks = new WebhookSender(local, config, log, (job) => presentJob(job));
  const stopMaintenance = startMaintenance({ store, results, config, log, bull, local, queue, redis });
  if (worker) {
    await worker.waitUntilReady();
    worker.start();
  }
  let closing: Promise<void> | null = null;
  return {
    app,
    config,
    store,
    queue,
    worker,
    results,
    ffmpeg,
    log,
    close() {
      closing ??= (async () => {
        stopMaintenance();
        queue.close();
        await worker?.stop();
        await webhooks.close();
        await app.close();
        await bus.close();
        await bull.close();
        await results.close();
        for (const c of [subscriber, blocking, redis]) c?.disconnect();
      })();
      return closing;
    },
  };
}

/**
 * What every cluster process runs in the background: the age cleanup (idempotent, and the temp folders
 * it sweeps are this host's) and the reconciliation with BullMQ (one process per interval, by lock).
 */
function startMaintenance(deps: {
  store: RedisJobStore;
  results: ResultStore;
  config: Config;
  log: Logger;
  bull: Queue<QueuedJob>;
  local: EventEmitter<JobEvents>;
  queue: ClusterQueue;
  redis: Redis;
}): () => void {
  const { store, results, config, log, bull, local, queue, redis } = deps;
  const stopCleanup = scheduleCleanup(store, results, config, log);
  const lockKey = `${config.queue.prefix}:reconcile-lock`;
  const stopReconcile = scheduleReconcile(
    {
      store,
      bull,
      local,
      log,
      enqueue: (job) => queue.enqueue(job),
      lock: async (ttl) => (await redis.set(lockKey, '1', 'PX', ttl, 'NX')) === 'OK',
    },
    Math.max(config.queue.stalled_interval_ms, 5000),
  );
  return () => {
    stopCleanup();
    stopReconcile();
  };
}
