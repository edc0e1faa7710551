#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { defaultConfigFile, loadConfig } from './config.js';
import { isGabeError } from './errors.js';
import { createLogger } from './log.js';
import { createService, listen } from './server.js';
import { VERSION } from './version.js';

/** Hard stop if a clean shutdown hangs (a wedged socket, a stuck ffmpeg): jobs resume next start anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('a port is a number from 0 to 65535');
  return n;
}

function fail(err: unknown): never {
  const message = isGabeError(err) ? `${err.message} [${err.code}]` : String((err as Error)?.stack ?? err);
  process.stderr.write(`gabe: ${message}\n`);
  process.exit(1);
}

async function serve(opts: { config?: string; host?: string; port?: number }): Promise<void> {
  const config = loadConfig({
    file: opts.config ?? defaultConfigFile(),
    overrides: { host: opts.host, port: opts.port },
  });
  const log = createLogger({ logPath: config.log_path });
  const service = await createService(config, { log });
  const address = await listen(service, config.host, config.port);
  process.stdout.write(`Gabe ${VERSION} listening on ${address}\nAPI docs: ${address}/docs\n`);
  log.info({ address, ffmpeg: service.ffmpeg.ffmpeg, source: service.ffmpeg.source }, 'service started');

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

export function buildCli(): Command {
  const program = new Command('gabe')
    .description('Download HLS (M3U8) streams and MP4 URLs into MP4 files: an HTTP service and a CLI.')
    .version(VERSION);

  program
    .command('serve')
    .description('start the HTTP API (config: ./config.json or $GABE_CONFIG; missing file = defaults)')
    .option('-c, --config <file>', 'config file')
    .option('-H, --host <host>', 'address to listen on (default: config "host", 127.0.0.1)')
    .option('-p, --port <port>', 'port to listen on (default: config "port", 8000)', parsePort)
    .action((opts: { config?: string; host?: string; port?: number }) => serve(opts).catch(fail));

  return program;
}

// Quietly ignore EPIPE when stdout is piped into `head` and closed early.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

buildCli()
  .parseAsync(process.argv)
  .catch((err: unknown) => fail(err));
