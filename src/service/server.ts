import { mkdirSync } from 'node:fs';
import { presentJob } from '../api/present.js';
import { scheduleCleanup } from '../jobs/cleanup.js';
import { Scheduler } from '../jobs/scheduler.js';
import { SqliteJobStore } from '../jobs/store.js';
import type { JobType } from '../jobs/types.js';
import { WebhookSender } from '../jobs/webhooks.js';
import { type FfmpegTools, locateFfmpeg } from '../media/ffmpeg/locate.js';
import type { Downloader } from '../pipeline/context.js';
import { hlsDownloader } from '../pipeline/hls/job.js';
import { mp4Downloader } from '../pipeline/mp4/job.js';
import { createResultStore } from '../storage/choose.js';
import type { ResultStore } from '../storage/results.js';
import { type App, buildApp } from './app.js';
import type { Config } from './config.js';
import { GabeError } from './errors.js';
import { createLogger, type Logger } from './log.js';

export interface Service {
  app: App;
  config: Config;
  store: SqliteJobStore;
  scheduler: Scheduler;
  results: ResultStore;
  ffmpeg: FfmpegTools;
  log: Logger;
  /** Stops admitting, interrupts running jobs (they resume next start), closes everything. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  log?: Logger;
  /** Pre-located tools (tests reuse one lookup across many services). */
  ffmpeg?: FfmpegTools;
  /** Replaces downloaders (tests wrap the real ones to reach their seams). */
  downloaders?: Partial<Record<JobType, Downloader>>;
  /** Where finished files go (default: output_path; S3 when storage.s3.bucket is set). */
  results?: ResultStore;
}

/** Wires the service together without listening: the API, the CLI and the tests all start here. */
export async function createService(config: Config, options: ServiceOptions = {}): Promise<Service> {
  const log = options.log ?? createLogger({ logPath: config.log_path });
  const ffmpeg = options.ffmpeg ?? (await locateFfmpeg({ ffmpegPath: config.ffmpeg_path }));
  if (ffmpeg.warning) log.warn(ffmpeg.warning);
  for (const dir of [config.output_path, config.temp_path]) mkdirSync(dir, { recursive: true });
  const store = new SqliteJobStore(config.database_path);
  const results = options.results ?? (await createResultStore(config, log));
  const scheduler = new Scheduler({
    store,
    config,
    ffmpeg,
    log,
    results,
    downloaders: { mp4: mp4Downloader, hls: hlsDownloader, ...options.downloaders },
  });
  const app = await buildApp({
    config,
    store,
    storeInfo: { kind: 'sqlite', path: config.database_path },
    queue: scheduler,
    results,
    ffmpeg,
    log,
  });
  const webhooks = new WebhookSender(scheduler.local, config, log, (job) => presentJob(job));
  const stopCleanup = scheduleCleanup(store, results, config, log);
  const { requeued, pending, failed } = scheduler.start();
  if (requeued > 0 || pending > 0 || failed > 0)
    log.info({ requeued, pending, failed }, 'resuming jobs from the previous run');
  let closing: Promise<void> | null = null;
  return {
    app,
    config,
    store,
    scheduler,
    results,
    ffmpeg,
    log,
    close() {
      closing ??= (async () => {
        stopCleanup();
        await scheduler.stop();
        await webhooks.close();
        await app.close();
        await results.close();
        store.close();
      })();
      return closing;
    },
  };
}

/** Starts listening; fails with a clear message when the port is taken. */
export async function listen(service: { app: App }, host: string, port: number): Promise<string> {
  try {
    return await service.app.listen({ host, port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new GabeError(
        'CONFIG',
        `port ${port} on ${host} is already in use; stop the other process or pass --port`,
        {
          cause: err,
        },
      );
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
      throw new GabeError('CONFIG', `cannot listen on host "${host}": ${(err as Error).message}`, {
        cause: err,
      });
    }
    throw err;
  }
}
