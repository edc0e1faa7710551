/** `gabe info`: a playlist's variants and renditions, or its segments (the work is in info.ts). */
import type { Command } from 'commander';
import { fail } from './fail.js';

export function infoCommand(program: Command): void {
  program
    .command('info')
    .description('list the variants and renditions of a playlist (like yt-dlp -F), or its segments')
    .argument('<source>', 'playlist URL or file')
    .option('--json', 'print the parsed model as JSON')
    .option('--base-url <url>', 'URL to resolve relative URIs against (default: the URL fetched)')
    .option('--proxy <url>', 'proxy for fetching the playlist')
    .action((source: string, opts: { json?: boolean; baseUrl?: string; proxy?: string }) =>
      import('./info.js')
        .then(({ info }) => info(source, { ...opts, timeoutMs: 15_000 }))
        .then((out) => {
          process.stdout.write(`${out}\n`);
        })
        .catch(fail),
    );
}
