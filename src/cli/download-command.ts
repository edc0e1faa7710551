/** `gabe download`: one download in this process, with a progress line; no service, no web stack. */
import type { Command } from 'commander';
import type { JobRequest, JobResult } from '../jobs/types.js';
import type { LoadConfigOptions } from '../service/config.js';
import { fail } from './fail.js';
import {
  collect,
  collectHeader,
  headersOf,
  parseConcurrency,
  parseHex128,
  parseResolution,
  parseSeconds,
} from './option-parsers.js';
import { type OutputFlags, outputOptions, outputRequest } from './output-options.js';

interface DownloadFlags extends OutputFlags {
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

export function downloadCommand(program: Command): void {
  const command = program
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
    .option('--proxy <url>', 'http://, https://, socks5:// or socks5h:// proxy')
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
    .option('--max-duration <s>', 'live streams: stop recording after this many seconds', parseSeconds);
  outputOptions(command)
    .option('-c, --config <file>', 'config file for defaults (timeouts, retries, ffmpeg_path)')
    .action((url: string, opts: DownloadFlags) => download(url, opts).catch(fail));
}

/** The config keys the flags set; undefined leaves the file's (or the default) value. */
function overridesOf(opts: DownloadFlags): LoadConfigOptions['overrides'] {
  return {
    // An explicit number is a fixed number: no growth beyond it.
    segment_concurrency: opts.concurrency,
    segment_concurrency_max: opts.concurrency,
    // One flag for both kinds: -n is the segments of an HLS job or the connections of an MP4 one.
    mp4_connections: opts.concurrency === undefined ? undefined : Math.min(opts.concurrency, 64),
    mp4_connections_max: opts.concurrency === undefined ? undefined : Math.min(opts.concurrency, 64),
    use_multithreading: opts.concurrency === 1 ? false : undefined,
    proxy: opts.proxy,
  };
}

/** The rest of the job's request, as POST /download/ would take it. */
function requestOf(opts: DownloadFlags): Omit<JobRequest, 'url'> {
  return {
    headers: headersOf(opts.header) ?? null,
    key: opts.key ?? null,
    iv: opts.iv ?? null,
    audio_language: opts.audioLanguage ?? null,
    audio_only: opts.audioOnly ?? null,
    subtitles: opts.subtitles === false ? false : null,
    subtitle_languages: opts.subtitleLang ?? null,
    max_duration: opts.maxDuration ?? null,
    ...outputRequest(opts),
  };
}

function printResult(result: JobResult): void {
  const facts = [
    result.resolution,
    `${result.file_size_mb} MB`,
    result.duration_seconds && `${result.duration_seconds.toFixed(1)} s`,
  ];
  process.stdout.write(`${result.output_path}\n`);
  if (result.thumbnail_path) process.stderr.write(`poster: ${result.thumbnail_path}\n`);
  process.stderr.write(`done: ${facts.filter(Boolean).join(', ')}\n`);
  for (const w of result.warnings ?? []) process.stderr.write(`note: ${w}\n`);
}

async function download(url: string, opts: DownloadFlags): Promise<void> {
  const [
    { defaultConfigFile, loadConfig },
    { createLogger },
    { locateFfmpeg },
    { downloadLocally },
    { progressReporter },
  ] = await Promise.all([
    import('../service/config.js'),
    import('../service/log.js'),
    import('../media/ffmpeg/locate.js'),
    import('./download.js'),
    import('./progress.js'),
  ]);
  const config = loadConfig({ file: opts.config ?? defaultConfigFile(), overrides: overridesOf(opts) });
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
      request: requestOf(opts),
    });
    reporter.stop();
    printResult(result);
  } catch (err) {
    reporter.stop();
    if (controller.signal.aborted) {
      process.stderr.write('gabe: cancelled; partial files removed\n');
      process.exit(130);
    }
    throw err;
  }
}
