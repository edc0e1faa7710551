/** `gabe serve`: the HTTP API in this process, stopped cleanly on SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { VERSION } from '../version.js';
import { fail } from './fail.js';
import { parsePort } from './option-parsers.js';

/** Hard stop if a clean shutdown hangs (a wedged socket, a stuck ffmpeg): jobs resume next start anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

interface ServeFlags {
  config?: string;
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
    .action((opts: ServeFlags) => serve(opts).catch(fail));
}

async function serve(opts: ServeFlags): Promise<void> {
  const [{ defaultConfigFile, loadConfig }, { createLogger }, { createService, listen }] = await Promise.all([
    import('../service/config.js'),
    import('../service/log.js'),
    import('../service/server.js'),
  ]);
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
