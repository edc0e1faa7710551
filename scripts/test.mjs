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
  'cluster', // a DELETE through another API node must act within 1 s; a dozen processes of its own
];

/**
 * The slowest concurrent files first (quiet-machine seconds: live 75, ts-fuzz 28, reliability 21,
 * mp4 22, hls-download 18, hostile 16), so that the last file to start is a short one:
 * a long file started last would leave the other slot idle while it finishes. live.test.ts mostly
 * waits on its real-time origin, so the CPU-bound fuzzing beside it has the machine to itself.
 */
const LONG_FIRST = [
  'live',
  'ts-fuzz',
  'reliability',
  'mp4',
  'hls-download',
  'hostile',
  'hls-extras',
  'web',
  'interfaces',
  'cli-download',
  'remux-in-process',
];

const files = (dir) =>
  readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => ({ name: f.slice(0, -'.test.ts'.length), file: path.posix.join(dir, f) }));

const rank = (name) => (LONG_FIRST.includes(name) ? LONG_FIRST.indexOf(name) : LONG_FIRST.length);

function e2eGroups() {
  const all = files('test/e2e');
  const concurrent = all.filter((f) => !SERIAL.includes(f.name)).sort((a, b) => rank(a.name) - rank(b.name));
  const serial = SERIAL.map((name) => all.find((f) => f.name === name)).filter(Boolean);
  return [
    { label: 'e2e, concurrent', files: concurrent.map((f) => f.file), concurrency: CONCURRENCY },
    { label: 'e2e, serial', files: serial.map((f) => f.file), concurrency: 1 },
  ];
}

const nodeTest = (extra) => {
  const args = ['--import', 'tsx', '--test', '--test-timeout=300000'];
  // Output is collected through a pipe, where node would pick TAP: keep what a terminal would show.
  if (process.stdout.isTTY && !extra.some((a) => a.startsWith('--test-reporter'))) {
    args.push('--test-reporter=spec');
  }
  return [...args, ...extra];
};

/** One `node --test` per file, `concurrency` at a time in list order; each file's output when it ends. */
async function runFiles(group, extra) {
  const queue = [...group.files];
  const results = [];
  const one = (file) =>
    new Promise((resolve) => {
      const started = performance.now();
      const child = spawn(process.execPath, [...nodeTest(extra), file], {
        cwd: ROOT,
        env:
          process.env.FORCE_COLOR || !process.stdout.isTTY
            ? process.env
            : { ...process.env, FORCE_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out = [];
      child.stdout.on('data', (d) => out.push(d));
      child.stderr.on('data', (d) => out.push(d));
      child.on('close', (code, signal) => {
        const seconds = (performance.now() - started) / 1000;
        const ok = code === 0;
        process.stdout.write(`\n# ${file}\n`);
        process.stdout.write(Buffer.concat(out));
        results.push({ file, ok, seconds, how: signal ?? `exit ${code}` });
        resolve();
      });
    });
  const lane = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) await one(file);
  };
  await Promise.all(Array.from({ length: group.concurrency }, lane));
  for (const r of results) {
    console.error(`# ${r.ok ? 'ok    ' : 'FAILED'} ${r.seconds.toFixed(1).padStart(6)} s  ${r.file}`);
  }
  return results.every((r) => r.ok);
}

/** The unit files: small and pure, one `node --test` for all, its own summary. */
function runTogether(group, extra) {
  const args = [...nodeTest(extra), `--test-concurrency=${group.concurrency}`, ...group.files];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
    child.on('exit', (code) => resolve(code === 0));
  });
}

const unitGroup = () => ({
  label: 'unit',
  files: files('test/unit').map((f) => f.file),
  concurrency: CONCURRENCY,
  together: true,
});

async function run(group, extra) {
  const started = performance.now();
  const ok = await (group.together ? runTogether(group, extra) : runFiles(group, extra));
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const how = `${group.files.length} files, ${group.concurrency} at a time`;
  console.error(`# ${group.label}: ${how}, ${seconds} s, ${ok ? 'passed' : 'FAILED'}`);
  return ok;
}

const [mode = 'all', ...rest] = process.argv.slice(2);
const only = rest.filter((a) => a.endsWith('.test.ts')).map((f) => path.posix.normalize(f));
const extra = rest.filter((a) => !a.endsWith('.test.ts'));
const groups = { unit: () => [unitGroup()], e2e: e2eGroups, all: () => [unitGroup(), ...e2eGroups()] }[mode];
const chosen = (group) => ({ ...group, files: group.files.filter((f) => only.includes(f)) });
if (!groups) {
  console.error(`usage: node scripts/test.mjs [all|unit|e2e] [test files] [node --test flags]; not ${mode}`);
  process.exit(2);
}
const unknown = only.filter((f) => !groups().some((g) => g.files.includes(f)));
if (unknown.length) {
  console.error(`not a ${mode} test file: ${unknown.join(', ')}`);
  process.exit(2);
}
const started = performance.now();
let ok = true;
for (const group of groups().map((g) => (only.length ? chosen(g) : g))) {
  if (group.files.length) ok = (await run(group, extra)) && ok;
}
console.error(
  `# ${mode}: ${((performance.now() - started) / 1000).toFixed(1)} s, ${ok ? 'passed' : 'FAILED'}`,
);
process.exitCode = ok ? 0 : 1;
