#!/usr/bin/env node
/**
 * Runs the test suite: `node scripts/test.mjs [all|unit|e2e] [extra node --test flags]` (default all).
 *
 * test/unit/ runs 2 files at a time. test/e2e/ runs in two groups: most files 2 at a time (each is a
 * process that mostly waits on its origins, timers and ffmpeg), then the SERIAL files one at a time
 * with nothing else of the suite beside them, because they assert timing or resource bounds that a
 * neighbour on a 2-core machine would eat into: /health within 100 ms and CPU/RSS budgets
 * (helpers/hostile-harness.ts), event-loop delay, sub-second deadlines, the load storm. A new e2e file
 * joins the concurrent group unless it is listed here. Every group runs even when an earlier one
 * failed; the exit code is non-zero if any test failed.
 * GABE_TEST_CONCURRENCY=1 runs every group one file at a time.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONCURRENCY = Number(process.env.GABE_TEST_CONCURRENCY ?? 2);

/** e2e files that assert timing or resource bounds: run alone, one at a time. */
const SERIAL = [
  'hostile-service', // /health within 100 ms, CPU and RSS budgets, reload gaps
  'hostile-memory', // /health and RSS bounds while 128 MB segments stream through
  'hostile-origin', // /health, CPU and RSS budgets per hostile origin
  'hostile-redirect', // runHostileJob budgets
  'load', // 1,000 submissions from 50 clients: the machine's whole attention
  'h1-transport', // an abort that must act within 350 ms
];

/**
 * The slowest concurrent files first, so that the last file to start is a short one (a long file
 * started last would leave the other slot idle while it finishes). Mostly waiting on a real-time
 * live origin, live.test.ts goes first of all.
 */
const LONG_FIRST = ['live', 'hls-download', 'ts-fuzz', 'reliability', 'hostile', 'mp4', 'hls-extras'];

const files = (dir) =>
  readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => ({ name: f.slice(0, -'.test.ts'.length), file: path.posix.join(dir, f) }));

function e2eGroups() {
  const all = files('test/e2e');
  const rank = (name) => (LONG_FIRST.includes(name) ? LONG_FIRST.indexOf(name) : LONG_FIRST.length);
  const concurrent = all.filter((f) => !SERIAL.includes(f.name)).sort((a, b) => rank(a.name) - rank(b.name));
  const serial = SERIAL.map((name) => all.find((f) => f.name === name)).filter(Boolean);
  return [
    { label: 'e2e, concurrent', files: concurrent.map((f) => f.file), concurrency: CONCURRENCY },
    { label: 'e2e, serial', files: serial.map((f) => f.file), concurrency: 1 },
  ];
}

const unitGroup = () => ({
  label: 'unit',
  files: files('test/unit').map((f) => f.file),
  concurrency: CONCURRENCY,
});

function run(group, extra) {
  const args = ['--import', 'tsx', '--test', `--test-concurrency=${group.concurrency}`];
  args.push('--test-timeout=300000', ...extra, ...group.files);
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
    child.on('exit', (code, signal) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const how = `${group.files.length} files, ${group.concurrency} at a time`;
      console.error(`# ${group.label}: ${how}, ${seconds} s, ${signal ?? `exit ${code}`}`);
      resolve(code === 0);
    });
  });
}

const [mode = 'all', ...extra] = process.argv.slice(2);
const groups = { unit: () => [unitGroup()], e2e: e2eGroups, all: () => [unitGroup(), ...e2eGroups()] }[mode];
if (!groups) {
  console.error(`usage: node scripts/test.mjs [all|unit|e2e] [node --test flags]; not ${mode}`);
  process.exit(2);
}
let ok = true;
for (const group of groups()) ok = (await run(group, extra)) && ok;
process.exitCode = ok ? 0 : 1;
