import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** stdout and stderr interleaved as they arrived. */
  output: () => string;
  exit: Promise<number | null>;
}

/** Runs the real CLI (src/cli.ts through tsx) as a child process, as a user would from a shell. */
export function gabe(args: string[], env: Record<string, string> = {}, cwd = ROOT): CliRun {
  // tsx is resolved here, not from `cwd`, so the CLI can run in a folder outside the project.
  return runCli(['--import', import.meta.resolve('tsx'), path.join(ROOT, 'src/cli.ts')], args, env, cwd);
}

/** Runs the CLI as `node <entry...> <args>`: `gabe()`'s sources, or the built bundle (`[dist/cli.js]`) as shipped. */
export function runCli(
  entry: string[],
  args: string[],
  env: Record<string, string> = {},
  cwd = ROOT,
): CliRun {
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let all = '';
  child.stdout?.on('data', (d) => {
    out += d;
    all += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
    all += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, output: () => all, exit };
}

export async function waitForOutput(
  output: () => string,
  re: RegExp,
  ms = 30_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = output().match(re);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; output:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
