/**
 * `gabe serve` (the HTTP API, and in it the workers unless --no-worker) and `gabe worker` (downloads
 * only, from the cluster queue in Redis), each stopped cleanly on SIGINT/SIGTERM.
 */
import type { Command } from 'commander';
import type { Logger } from '../service/log.js';
import { VERSION } from '../version.js';
import { fail } from './fail.js';
import { parseConcurrency, parsePort } from './option-parsers.js';

/** Hard stop if a clean shutdown hangs (a wedged socket, a stuck ffmpeg): jobs resume next start anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

interface ServeFlags {
  config?: string;
  host?: string;
  port?: number;
  /** false with --no-worker. */
  worker: boolean;
}

interface WorkerFlags {
  config?: string;
  concurrency?: number;
  host?: string;
  port?: number;
}

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('start the HTTP API (config: ./config.json or $GABE_CONFIG; missing file = defaults)')
    .option('-c, --config <file>', 'config file')
    .option('-H, --host <host>', 'address to listen on (default: config "host", 127.0.0.1)')
    .option('-p, --port <port>', 'port to listen on (default: config "port", 8000)', parsePort)
    .option('--no-worker', 'with queue.redis_url: serve the API only; `gabe worker` processes run the jobs')
    .action((opts: ServeFlags) => serve(opts).catch(fail));
  program
    .command('worker')
    .description('run jobs from the cluster queue (needs queue.redis_url); no API')
    .option('-c, --config <file>', 'config file')
    .option(
      '--concurrency <n>',
      'jobs run at once (default: config max_concurrent_downloads)',
      parseConcurrency,
    )
    .option('-H, --host <host>', 'address for /health and /metrics (with --port)', '127.0.0.1')
    .option('-p, --port <port>', 'serve /health and /metrics on this port (default: none)', parsePort)
    .action((opts: WorkerFlags) => worker(opts).catch(fail));
}

async function load(file: string | undefined, overrides: Record<string, unknown>) {
  const [{ defaultConfigFile, loadConfig }, { createLogger }] = await Promise.all([
    import('../service/config.js'),
    import('../service/log.js'),
  ]);
  const config = loadConfig({ file: file ?? defaultConfigFile(), overrides });
  return { config, log: createLogger({ logPath: config.log_path }) };
}

async function serve(opts: ServeFlags): Promise<void> {
  const { config, log } = await load(opts.config, { host: opts.host, port: opts.port });
  const { createService, listen } = await import('../service/server.js');
  const { GabeError } = await import('../service/errors.js');
  const service = config.queue.redis_url
    ? await (await import('../service/cluster.js')).createClusterService(config, {
        api: true,
        worker: opts.worker,
        log,
      })
    : opts.worker
      ? await createService(config, { log })
      : null;
  if (!service) {
    throw new GabeError(
      'CONFIG',
      '--no-worker needs queue.redis_url: without Redis no other process can run the jobs',
    );
  }
  const address = await listen(service, config.host, config.port);
  process.stdout.write(`Gabe ${VERSION} listening on ${address}\nAPI docs: ${address}/docs\n`);
  log.info(
    {
      address,
      ffmpeg: service.ffmpeg.ffmpeg,
      source: service.ffmpeg.source,
      cluster: Boolean(config.queue.redis_url),
      worker: opts.worker,
    },
    'service started',
  );
  stopOnSignals(service, log);
}

async function worker(opts: WorkerFlags): Promise<void> {
  const { config, log } = await load(opts.config, {});
  const { createClusterService } = await import('../service/cluster.js');
  const service = await createClusterService(config, {
    api: false,
    worker: true,
    log,
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
  });
  const concurrency = opts.concurrency ?? config.max_concurrent_downloads;
  let where = '';
  if (opts.port !== undefined) {
    const { listen } = await import('../service/server.js');
    where = ` (/health and /metrics on ${await listen(service, opts.host ?? '127.0.0.1', opts.port)})`;
  }
  process.stdout.write(`Gabe ${VERSION} worker running ${concurrency} jobs at once${where}\n`);
  log.info({ concurrency, pid: process.pid }, 'worker started');
  stopOnSignals(service, log);
}

function stopOnSignals(service: { close(): Promise<void> }, log: Logger): void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      process.stderr.write('gabe: second signal, exiting now\n');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: running jobs will resume on the next start');
    const deadline = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    service
      .close()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}
