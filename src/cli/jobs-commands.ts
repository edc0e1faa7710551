/**
 * The commands that talk to a running service: `submit`, `jobs`, `status`, `cancel`. The HTTP client
 * (client.ts) is imported when one of them runs.
 */
import type { Command } from 'commander';
import type { JobListResponse, JobResponse } from '../api/schemas.js';
import type { ClientOptions } from './client.js';
import { fail } from './fail.js';
import { collectHeader, headersOf, parseResolution, parseSeconds } from './option-parsers.js';
import { type OutputFlags, outputOptions, outputRequest } from './output-options.js';

const DEFAULT_SERVER = 'http://127.0.0.1:8000';

interface ClientFlags {
  server?: string;
  apiKey?: string;
}

interface SubmitFlags extends ClientFlags, OutputFlags {
  resolution?: string;
  name?: string;
  mp4?: boolean;
  callbackUrl?: string;
  header?: string[];
  audioOnly?: boolean;
  maxDuration?: number;
  follow?: boolean;
  json?: boolean;
}

const client = (cmd: Command): Command =>
  cmd
    .option('-s, --server <url>', `Gabe service URL (default: $GABE_SERVER or ${DEFAULT_SERVER})`)
    .option('-k, --api-key <key>', 'API key (default: $GABE_API_KEY)');
const connect = (opts: ClientFlags): ClientOptions => ({
  server: opts.server ?? process.env['GABE_SERVER'] ?? DEFAULT_SERVER,
  apiKey: opts.apiKey ?? process.env['GABE_API_KEY'],
});
const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};
const api = () => import('./client.js');
/** Exit status of a followed job: 0 only when it completed. */
const finish = async (job: JobResponse, json?: boolean) => {
  const { formatJobLine } = await api();
  print(json ? JSON.stringify(job, null, 2) : formatJobLine(job));
  if (job.status !== 'COMPLETED') process.exitCode = 1;
};

export function jobsCommands(program: Command): void {
  const submitCommand = client(program.command('submit'))
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
    .option('--max-duration <s>', 'live streams: stop recording after this many seconds', parseSeconds);
  outputOptions(submitCommand)
    .option('-f, --follow', 'show progress until the job ends')
    .option('--json', 'print the job as JSON')
    .action((url: string, opts: SubmitFlags) => submit(url, opts).catch(fail));

  client(program.command('jobs'))
    .description('list jobs of a running service, newest first')
    .option('--status <status>', 'PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED')
    .option('-n, --limit <n>', 'how many', '20')
    .option('--json', 'print JSON')
    .action((opts: ClientFlags & { status?: string; limit: string; json?: boolean }) =>
      listJobs(opts).catch(fail),
    );

  client(program.command('status'))
    .description('show one job; --follow shows progress until it ends')
    .argument('<id>', 'job id')
    .option('-f, --follow', 'follow live progress')
    .option('--json', 'print JSON')
    .action((id: string, opts: ClientFlags & { follow?: boolean; json?: boolean }) =>
      status(id, opts).catch(fail),
    );

  client(program.command('cancel'))
    .description('cancel a pending or running job (a finished one is deleted with its file)')
    .argument('<id>', 'job id')
    .action((id: string, opts: ClientFlags) => cancel(id, opts).catch(fail));
}

async function submit(url: string, opts: SubmitFlags): Promise<void> {
  const { call, follow } = await api();
  const o = connect(opts);
  const body: Record<string, unknown> = { url };
  if (opts.name) body['video_name'] = opts.name;
  if (opts.callbackUrl) body['callback_url'] = opts.callbackUrl;
  if (!opts.mp4 && opts.resolution) body['resolution'] = opts.resolution;
  if (opts.header?.length) body['headers'] = headersOf(opts.header);
  if (!opts.mp4 && opts.audioOnly) body['audio_only'] = true;
  if (!opts.mp4 && opts.maxDuration) body['max_duration'] = opts.maxDuration;
  Object.assign(body, outputRequest(opts, !opts.mp4));
  const job = await call<JobResponse>(o, 'POST', opts.mp4 ? '/download/mp4' : '/download/', body);
  if (opts.follow) return finish(await follow(o, job.job_id, process.stderr), opts.json);
  print(opts.json ? JSON.stringify(job, null, 2) : job.job_id);
}

async function listJobs(
  opts: ClientFlags & { status?: string; limit: string; json?: boolean },
): Promise<void> {
  const { call, formatJobLine } = await api();
  const q = new URLSearchParams({ limit: opts.limit, ...(opts.status ? { status: opts.status } : {}) });
  const list = await call<JobListResponse>(connect(opts), 'GET', `/jobs?${q}`);
  if (opts.json) return print(JSON.stringify(list, null, 2));
  for (const j of list.jobs) print(formatJobLine(j));
  if (list.total > list.jobs.length) print(`(${list.jobs.length} of ${list.total})`);
}

async function status(id: string, opts: ClientFlags & { follow?: boolean; json?: boolean }): Promise<void> {
  const { call, follow, formatJobLine } = await api();
  const o = connect(opts);
  if (opts.follow) return finish(await follow(o, id, process.stderr), opts.json);
  const job = await call<JobResponse>(o, 'GET', `/job/${encodeURIComponent(id)}`);
  print(opts.json ? JSON.stringify(job, null, 2) : formatJobLine(job));
}

async function cancel(id: string, opts: ClientFlags): Promise<void> {
  const { call, formatJobLine } = await api();
  const job = await call<JobResponse>(connect(opts), 'DELETE', `/job/${encodeURIComponent(id)}`);
  print(formatJobLine(job));
}
