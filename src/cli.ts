#!/usr/bin/env node
// Each command imports what it needs when it runs: `gabe download` must not pay for loading the web
// framework, and `gabe --version` for nothing at all (start-up is part of every CLI run's time).
import { Command, InvalidArgumentError } from 'commander';
import type { JobListResponse, JobResponse } from './api/schemas.js';
import type { ClientOptions } from './cli/client.js';
import { redactCredentials } from './net/redact.js';
import { parseResolutionPreference } from './playlist/selection.js';
import { isGabeError } from './service/errors.js';
import { keepHeapSmall } from './service/heap.js';
import { VERSION } from './version.js';

keepHeapSmall();

const DEFAULT_SERVER = 'http://127.0.0.1:8000';

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
  process.stderr.write(`gabe: ${redactCredentials(message)}\n`);
  process.exit(1);
}

async function serve(opts: { config?: string; host?: string; port?: number }): Promise<void> {
  const [{ defaultConfigFile, loadConfig }, { createLogger }, { createService, listen }] = await Promise.all([
    import('./service/config.js'),
    import('./service/log.js'),
    import('./service/server.js'),
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

function parseConcurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256)
    throw new InvalidArgumentError('a whole number from 1 to 256');
  return n;
}

function parseResolution(value: string): string {
  try {
    parseResolutionPreference(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

interface DownloadFlags {
  output?: string;
  resolution?: string;
  concurrency?: number;
  proxy?: string;
  config?: string;
  header?: string[];
  key?: string;
  iv?: string;
  audioLanguage?: string;
  audioOnly?: boolean;
  subtitles?: boolean;
  subtitleLang?: string[];
  maxDuration?: number;
}

/** `-H "Referer: https://x/"`, repeatable, as curl takes them. */
function collectHeader(value: string, previous: string[] = []): string[] {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(value)) throw new InvalidArgumentError('use "Name: value"');
  return [...previous, value];
}

function headersOf(lines: string[] | undefined): Record<string, string> | undefined {
  if (!lines?.length) return undefined;
  const out: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function parseHex128(value: string): string {
  if (!/^(0[xX])?[0-9a-fA-F]{32}$/.test(value)) throw new InvalidArgumentError('32 hexadecimal digits');
  return value;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a number of seconds above 0');
  return n;
}

async function download(url: string, opts: DownloadFlags): Promise<void> {
  const [
    { defaultConfigFile, loadConfig },
    { createLogger },
    { locateFfmpeg },
    { downloadLocally },
    { progressReporter },
  ] = await Promise.all([
    import('./service/config.js'),
    import('./service/log.js'),
    import('./media/ffmpeg/locate.js'),
    import('./cli/download.js'),
    import('./cli/progress.js'),
  ]);
  const config = loadConfig({
    file: opts.config ?? defaultConfigFile(),
    overrides: {
      // An explicit number is a fixed number: no growth beyond it.
      segment_concurrency: opts.concurrency,
      segment_concurrency_max: opts.concurrency,
      // One flag for both kinds: -n is the segments of an HLS job or the connections of an MP4 one.
      mp4_connections: opts.concurrency === undefined ? undefined : Math.min(opts.concurrency, 64),
      mp4_connections_max: opts.concurrency === undefined ? undefined : Math.min(opts.concurrency, 64),
      use_multithreading: opts.concurrency === 1 ? false : undefined,
      proxy: opts.proxy,
    },
  });
  const log = createLogger({ stdout: false, stderrLevel: 'warn' });
  const ffmpeg = await locateFfmpeg({ ffmpegPath: config.ffmpeg_path, verifyPath: false });
  if (ffmpeg.warning) log.warn(ffmpeg.warning);
  const controller = new AbortController();
  // A live recording: the first Ctrl-C stops it and keeps what was recorded, a second one cancels.
  const stop = new AbortController();
  let live = false;
  const onSignal = () => {
    if (live && !stop.signal.aborted) {
      process.stderr.write('gabe: stopping the recording (Ctrl-C again to cancel)\n');
      stop.abort();
      return;
    }
    controller.abort();
  };
  // `on`, not `once`: a second Ctrl-C right after the first must reach the handler too.
  process.on('SIGINT', onSignal);
  process.once('SIGTERM', () => controller.abort());
  const reporter = progressReporter(process.stderr);
  try {
    const result = await downloadLocally({
      url,
      output: opts.output,
      resolution: opts.resolution,
      proxy: opts.proxy,
      config,
      ffmpeg,
      log,
      signal: controller.signal,
      onProgress: (t) => reporter.update(t.snapshot()),
      stop: stop.signal,
      onLive: () => {
        live = true;
      },
      request: {
        headers: headersOf(opts.header) ?? null,
        key: opts.key ?? null,
        iv: opts.iv ?? null,
        audio_language: opts.audioLanguage ?? null,
        audio_only: opts.audioOnly ?? null,
        subtitles: opts.subtitles === false ? false : null,
        subtitle_languages: opts.subtitleLang ?? null,
        max_duration: opts.maxDuration ?? null,
      },
    });
    reporter.stop();
    const facts = [
      result.resolution,
      `${result.file_size_mb} MB`,
      result.duration_seconds && `${result.duration_seconds.toFixed(1)} s`,
    ];
    process.stdout.write(`${result.output_path}\n`);
    process.stderr.write(`done: ${facts.filter(Boolean).join(', ')}\n`);
    for (const w of result.warnings ?? []) process.stderr.write(`note: ${w}\n`);
  } catch (err) {
    reporter.stop();
    if (controller.signal.aborted) {
      process.stderr.write('gabe: cancelled; partial files removed\n');
      process.exit(130);
    }
    throw err;
  }
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

  program
    .command('download')
    .description(
      'download an HLS playlist or an MP4 URL into an MP4 file, in this process (no service needed)',
    )
    .argument('<url>', 'master or media playlist URL, or a direct video URL')
    .option(
      '-o, --output <file>',
      'output file (default: <name from the URL>.mp4 in this folder; never overwritten)',
    )
    .option('-r, --resolution <r>', 'WxH, 720p, best or worst (HLS)', parseResolution)
    .option(
      '-n, --concurrency <n>',
      'a fixed number of segments (HLS) or connections (MP4, at most 64) at once (default: HLS starts at segment_concurrency, 16, and grows while throughput does; MP4 starts at mp4_connections, 16, and grows up to 32)',
      parseConcurrency,
    )
    .option('--proxy <url>', 'http://, https:// or socks5:// proxy')
    .option(
      '-H, --header <line>',
      'request header for every fetch, "Name: value" (repeatable)',
      collectHeader,
    )
    .option('--key <hex>', 'AES-128 key (32 hex digits) instead of the key URIs', parseHex128)
    .option('--iv <hex>', "AES-128 IV (32 hex digits) instead of the playlist's", parseHex128)
    .option('--audio-language <tag>', 'audio rendition by language (HLS), e.g. en, pt-BR')
    .option('--audio-only', 'only the audio, into an .m4a file (HLS)')
    .option('--no-subtitles', 'leave WebVTT subtitle renditions out (HLS)')
    .option('--subtitle-lang <tag>', 'only this subtitle language (repeatable)', collect)
    .option('--max-duration <s>', 'live streams: stop recording after this many seconds', parseSeconds)
    .option('-c, --config <file>', 'config file for defaults (timeouts, retries, ffmpeg_path)')
    .action((url: string, opts: DownloadFlags) => download(url, opts).catch(fail));

  program
    .command('info')
    .description('list the variants and renditions of a playlist (like yt-dlp -F), or its segments')
    .argument('<source>', 'playlist URL or file')
    .option('--json', 'print the parsed model as JSON')
    .option('--base-url <url>', 'URL to resolve relative URIs against (default: the URL fetched)')
    .option('--proxy <url>', 'proxy for fetching the playlist')
    .action((source: string, opts: { json?: boolean; baseUrl?: string; proxy?: string }) =>
      import('./cli/info.js')
        .then(({ info }) => info(source, { ...opts, timeoutMs: 15_000 }))
        .then((out) => {
          process.stdout.write(`${out}\n`);
        })
        .catch(fail),
    );

  const client = (cmd: Command): Command =>
    cmd
      .option('-s, --server <url>', `Gabe service URL (default: $GABE_SERVER or ${DEFAULT_SERVER})`)
      .option('-k, --api-key <key>', 'API key (default: $GABE_API_KEY)');
  const connect = (opts: { server?: string; apiKey?: string }): ClientOptions => ({
    server: opts.server ?? process.env['GABE_SERVER'] ?? DEFAULT_SERVER,
    apiKey: opts.apiKey ?? process.env['GABE_API_KEY'],
  });
  const print = (text: string): void => {
    process.stdout.write(`${text}\n`);
  };
  const api = () => import('./cli/client.js');
  /** Exit status of a followed job: 0 only when it completed. */
  const finish = async (job: JobResponse, json?: boolean) => {
    const { formatJobLine } = await api();
    print(json ? JSON.stringify(job, null, 2) : formatJobLine(job));
    if (job.status !== 'COMPLETED') process.exitCode = 1;
  };

  client(program.command('submit'))
    .description('submit a download to a running service')
    .argument('<url>', 'playlist or video URL')
    .option('-r, --resolution <r>', 'WxH, 720p, best or worst (HLS)', parseResolution)
    .option('--name <name>', 'video name')
    .option('--mp4', 'a direct MP4 URL (default: HLS)')
    .option('--callback-url <url>', 'URL to POST the job to when it ends (webhook)')
    .option(
      '-H, --header <line>',
      'request header for every fetch, "Name: value" (repeatable)',
      collectHeader,
    )
    .option('--audio-only', 'only the audio, into an .m4a file (HLS)')
    .option('--max-duration <s>', 'live streams: stop recording after this many seconds', parseSeconds)
    .option('-f, --follow', 'show progress until the job ends')
    .option('--json', 'print the job as JSON')
    .action(
      (
        url: string,
        opts: ClientFlags & {
          resolution?: string;
          name?: string;
          mp4?: boolean;
          callbackUrl?: string;
          header?: string[];
          audioOnly?: boolean;
          maxDuration?: number;
          follow?: boolean;
          json?: boolean;
        },
      ) =>
        (async () => {
          const { call, follow } = await api();
          const o = connect(opts);
          const body: Record<string, unknown> = { url };
          if (opts.name) body['video_name'] = opts.name;
          if (opts.callbackUrl) body['callback_url'] = opts.callbackUrl;
          if (!opts.mp4 && opts.resolution) body['resolution'] = opts.resolution;
          if (opts.header?.length) body['headers'] = headersOf(opts.header);
          if (!opts.mp4 && opts.audioOnly) body['audio_only'] = true;
          if (!opts.mp4 && opts.maxDuration) body['max_duration'] = opts.maxDuration;
          const job = await call<JobResponse>(o, 'POST', opts.mp4 ? '/download/mp4' : '/download/', body);
          if (opts.follow) return finish(await follow(o, job.job_id, process.stderr), opts.json);
          print(opts.json ? JSON.stringify(job, null, 2) : job.job_id);
        })().catch(fail),
    );

  client(program.command('jobs'))
    .description('list jobs of a running service, newest first')
    .option('--status <status>', 'PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED')
    .option('-n, --limit <n>', 'how many', '20')
    .option('--json', 'print JSON')
    .action((opts: ClientFlags & { status?: string; limit: string; json?: boolean }) =>
      (async () => {
        const { call, formatJobLine } = await api();
        const q = new URLSearchParams({ limit: opts.limit, ...(opts.status ? { status: opts.status } : {}) });
        const list = await call<JobListResponse>(connect(opts), 'GET', `/jobs?${q}`);
        if (opts.json) return print(JSON.stringify(list, null, 2));
        for (const j of list.jobs) print(formatJobLine(j));
        if (list.total > list.jobs.length) print(`(${list.jobs.length} of ${list.total})`);
      })().catch(fail),
    );

  client(program.command('status'))
    .description('show one job; --follow shows progress until it ends')
    .argument('<id>', 'job id')
    .option('-f, --follow', 'follow live progress')
    .option('--json', 'print JSON')
    .action((id: string, opts: ClientFlags & { follow?: boolean; json?: boolean }) =>
      (async () => {
        const { call, follow, formatJobLine } = await api();
        const o = connect(opts);
        if (opts.follow) return finish(await follow(o, id, process.stderr), opts.json);
        const job = await call<JobResponse>(o, 'GET', `/job/${encodeURIComponent(id)}`);
        print(opts.json ? JSON.stringify(job, null, 2) : formatJobLine(job));
      })().catch(fail),
    );

  client(program.command('cancel'))
    .description('cancel a pending or running job (a finished one is deleted with its file)')
    .argument('<id>', 'job id')
    .action((id: string, opts: ClientFlags) =>
      (async () => {
        const { call, formatJobLine } = await api();
        const job = await call<JobResponse>(connect(opts), 'DELETE', `/job/${encodeURIComponent(id)}`);
        print(formatJobLine(job));
      })().catch(fail),
    );

  return program;
}

interface ClientFlags {
  server?: string;
  apiKey?: string;
}

// Quietly ignore EPIPE when stdout is piped into `head` and closed early.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

buildCli()
  .parseAsync(process.argv)
  .catch((err: unknown) => fail(err));
