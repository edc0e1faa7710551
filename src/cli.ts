#!/usr/bin/env node
// Each command imports what it needs when it runs: `gabe download` must not pay for loading the web
// framework, and `gabe --version` for nothing at all (start-up is part of every CLI run's time).
import { Command } from 'commander';
import { downloadCommand } from './cli/download-command.js';
import { fail } from './cli/fail.js';
import { infoCommand } from './cli/info-command.js';
import { jobsCommands } from './cli/jobs-commands.js';
import { serveCommand } from './cli/serve-command.js';
import { keepHeapSmall } from './service/heap.js';
import { VERSION } from './version.js';

keepHeapSmall();

export function buildCli(): Command {
  const program = new Command('gabe')
    .description('Download HLS (M3U8) streams and MP4 URLs into MP4 files: an HTTP service and a CLI.')
    .version(VERSION);
  serveCommand(program);
  downloadCommand(program);
  infoCommand(program);
  jobsCommands(program);
  return program;
}

// Quietly ignore EPIPE when stdout is piped into `head` and closed early.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

buildCli()
  .parseAsync(process.argv)
  .catch((err: unknown) => fail(err));
