/**
 * The tools under test and how each is invoked. Peers are optional: a missing binary is skipped
 * with a note, never an error.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export type ContentKind = 'hls' | 'mp4' | 'dash';

export interface Invocation {
  cmd: string;
  args: string[];
  /** Added to the clean environment the tool runs in. */
  env?: Record<string, string>;
}

export interface ToolContext {
  url: string;
  output: string;
  /** Folder of `output` (aria2c and yt-dlp want it separately). */
  dir: string;
  /** Gabe CLI: config file (allow_private_networks) and optional -n. */
  gabeConfig: string;
  concurrency?: number;
}

export interface Tool {
  id: string;
  label: string;
  kind: ContentKind;
  /** Binary that must be on PATH (peers), or null for Gabe. */
  binary: string | null;
  /** 'api' tools go through `gabe serve` instead of a command line. */
  mode: 'command' | 'api';
  /** Checked byte for byte against the source (MP4 downloaders that must not touch the bytes). */
  identical: boolean;
  /** Checked against the source's media bytes (mdat): Gabe writes its title and source into the moov. */
  sameMedia?: boolean;
  invoke?(ctx: ToolContext): Invocation;
}

export const GABE_CLI = path.resolve('dist/cli.js');

const gabeCli = (ctx: ToolContext): Invocation => ({
  cmd: process.execPath,
  args: [
    GABE_CLI,
    'download',
    ctx.url,
    '-o',
    ctx.output,
    '--config',
    ctx.gabeConfig,
    ...(ctx.concurrency ? ['-n', String(ctx.concurrency)] : []),
  ],
});

const ytDlp =
  (n: number) =>
  (ctx: ToolContext): Invocation => ({
    cmd: 'yt-dlp',
    args: [
      ...['--ignore-config', '--no-cache-dir', '--no-part', '--no-progress', '--quiet', '--no-warnings'],
      // The native HLS downloader is the one -N (concurrent fragments) applies to.
      ...['--downloader', 'm3u8:native', '-N', String(n), '-o', ctx.output, ctx.url],
    ],
  });

/** yt-dlp on an MPD: its native DASH downloader fetches both sets' fragments (-N at a time), then ffmpeg merges. */
const ytDlpDash =
  (n: number) =>
  (ctx: ToolContext): Invocation => ({
    cmd: 'yt-dlp',
    args: [
      ...['--ignore-config', '--no-cache-dir', '--no-part', '--no-progress', '--quiet', '--no-warnings'],
      ...['-f', 'bv+ba', '--merge-output-format', 'mp4', '-N', String(n), '-o', ctx.output, ctx.url],
    ],
  });

export const TOOLS: readonly Tool[] = [
  {
    id: 'gabe-cli',
    label: 'gabe download',
    kind: 'hls',
    binary: null,
    mode: 'command',
    identical: false,
    invoke: gabeCli,
  },
  {
    // The same download with every direct request over undici (src/net/transports/choose.ts): the
    // bench-only switch that measures the own HTTP/1.1 client against undici (docs/architecture.md, "HTTP stack").
    id: 'gabe-cli-undici',
    label: 'gabe download (undici)',
    kind: 'hls',
    binary: null,
    mode: 'command',
    identical: false,
    invoke: (ctx) => ({ ...gabeCli(ctx), env: { GABE_HTTP_TRANSPORT: 'undici' } }),
  },
  { id: 'gabe-api', label: 'gabe API', kind: 'hls', binary: null, mode: 'api', identical: false },
  {
    id: 'ffmpeg',
    label: 'ffmpeg -c copy',
    kind: 'hls',
    binary: 'ffmpeg',
    mode: 'command',
    identical: false,
    invoke: (ctx) => ({
      cmd: 'ffmpeg',
      args: ['-hide_banner', '-nostdin', '-v', 'error', '-y', '-i', ctx.url, '-c', 'copy', ctx.output],
    }),
  },
  {
    id: 'yt-dlp-N1',
    label: 'yt-dlp -N 1',
    kind: 'hls',
    binary: 'yt-dlp',
    mode: 'command',
    identical: false,
    invoke: ytDlp(1),
  },
  {
    id: 'yt-dlp-N8',
    label: 'yt-dlp -N 8',
    kind: 'hls',
    binary: 'yt-dlp',
    mode: 'command',
    identical: false,
    invoke: ytDlp(8),
  },
  {
    id: 'yt-dlp-N16',
    label: 'yt-dlp -N 16',
    kind: 'hls',
    binary: 'yt-dlp',
    mode: 'command',
    identical: false,
    invoke: ytDlp(16),
  },
  {
    id: 'gabe-cli-mp4',
    label: 'gabe download',
    kind: 'mp4',
    binary: null,
    mode: 'command',
    identical: false,
    sameMedia: true,
    invoke: gabeCli,
  },
  {
    id: 'gabe-api-mp4',
    label: 'gabe API',
    kind: 'mp4',
    binary: null,
    mode: 'api',
    identical: false,
    sameMedia: true,
  },
  {
    id: 'curl',
    label: 'curl',
    kind: 'mp4',
    binary: 'curl',
    mode: 'command',
    identical: true,
    invoke: (ctx) => ({ cmd: 'curl', args: ['-sS', '-f', '-o', ctx.output, ctx.url] }),
  },
  {
    id: 'aria2c-x16',
    label: 'aria2c -x16 -s16',
    kind: 'mp4',
    binary: 'aria2c',
    mode: 'command',
    identical: true,
    invoke: (ctx) => ({
      cmd: 'aria2c',
      args: [
        ...['-q', '-x16', '-s16', '-k1M', '--allow-overwrite=true', '--auto-file-renaming=false'],
        ...['-d', ctx.dir, '-o', path.basename(ctx.output), ctx.url],
      ],
    }),
  },
  {
    id: 'gabe-cli-dash',
    label: 'gabe download',
    kind: 'dash',
    binary: null,
    mode: 'command',
    identical: false,
    invoke: gabeCli,
  },
  { id: 'gabe-api-dash', label: 'gabe API', kind: 'dash', binary: null, mode: 'api', identical: false },
  {
    id: 'ffmpeg-dash',
    label: 'ffmpeg -c copy',
    kind: 'dash',
    binary: 'ffmpeg',
    mode: 'command',
    identical: false,
    invoke: (ctx) => ({
      cmd: 'ffmpeg',
      args: [
        '-hide_banner',
        '-nostdin',
        '-v',
        'error',
        '-y',
        '-i',
        ctx.url,
        '-map',
        '0',
        '-c',
        'copy',
        ctx.output,
      ],
    }),
  },
  {
    id: 'yt-dlp-N16-dash',
    label: 'yt-dlp -N 16',
    kind: 'dash',
    binary: 'yt-dlp',
    mode: 'command',
    identical: false,
    invoke: ytDlpDash(16),
  },
];

/** The peer each kind of content is compared with. */
export const REFERENCE: Record<ContentKind, string> = {
  hls: 'yt-dlp-N16',
  mp4: 'aria2c-x16',
  dash: 'yt-dlp-N16-dash',
};

export function onPath(binary: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, binary);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

function firstLine(cmd: string, args: string[]): string | null {
  try {
    const out = execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
    return out.split('\n')[0]?.trim() || null;
  } catch {
    return null;
  }
}

/** Version strings of every tool that is there (for the results file). */
export function toolVersions(): Record<string, string | null> {
  return {
    ffmpeg: firstLine('ffmpeg', ['-version']),
    ffprobe: firstLine('ffprobe', ['-version']),
    'yt-dlp': firstLine('yt-dlp', ['--version']),
    curl: firstLine('curl', ['--version']),
    aria2c: firstLine('aria2c', ['--version']),
    gabe: firstLine(process.execPath, [GABE_CLI, '--version']),
    time: firstLine('/usr/bin/time', ['--version']),
  };
}
