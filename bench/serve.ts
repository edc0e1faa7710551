/**
 * `gabe serve` as a child process with its own config, folders and database, as in production: the
 * server's CPU and memory are its own, not mixed with the benchmark's.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigSchema } from '../src/service/config-schema.js';
import { GABE_CLI } from './tools.js';

export interface GabeServer {
  pid: number;
  url: string;
  dir: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The environment without GABE_* overrides, so only the bench's config file counts. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GABE_')) env[k] = v;
  return env;
}

/** Builds dist/ as shipped (`npm run build`: the esbuild bundle), so Gabe is measured as users run it. */
export function build(log: (s: string) => void): void {
  log('building dist/ (npm run build)…');
  try {
    execFileSync(process.execPath, ['scripts/build.mjs'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
  } catch (err) {
    const out = String((err as { stderr?: string }).stderr ?? err).trim();
    throw new Error(`the build failed:\n${out.split('\n').slice(0, 20).join('\n')}`);
  }
}

/**
 * Keeps the keys this version of Gabe knows: config.json refuses unknown keys, and settings come and
 * go while Gabe is developed (a bench setting for a key that does not exist yet is simply not needed).
 */
export function knownConfig(wanted: Record<string, unknown>): {
  config: Record<string, unknown>;
  dropped: string[];
} {
  const known = new Set(Object.keys(ConfigSchema.properties));
  const config: Record<string, unknown> = {};
  const dropped: string[] = [];
  for (const [k, v] of Object.entries(wanted)) {
    if (known.has(k)) config[k] = v;
    else dropped.push(k);
  }
  return { config, dropped };
}

/** Writes `dir/config.json` for a server that may fetch from loopback, and starts it on a free port. */
export async function startGabeServe(
  dir: string,
  settings: Record<string, unknown> = {},
): Promise<GabeServer> {
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'config.json');
  const { config } = knownConfig({
    host: '127.0.0.1',
    port: 0,
    temp_path: 'temp',
    output_path: 'downloads',
    database_path: 'gabe.db',
    log_path: 'logs',
    // The benchmark origin is on 127.0.0.1.
    allow_private_networks: true,
    ...settings,
  });
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const child = spawn(process.execPath, [GABE_CLI, 'serve', '--config', configFile, '--port', '0'], {
    cwd: dir,
    env: cleanEnv(),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gabe serve did not start in 30 s:\n${output}`)), 30_000);
    const onData = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-8000);
      const m = /listening on (http:\/\/\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gabe serve exited (${code}) before listening:\n${output}`));
    });
  });
  // Keep draining its logs so a full pipe never blocks it.
  child.stdout!.resume();
  child.stderr!.resume();
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    pid: child.pid!,
    url,
    dir,
    child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            // gone
          }
        }, 15_000);
        await exited;
        clearTimeout(killer);
      }
    },
  };
}

export interface ApiJob {
  job_id: string;
  status: string;
  error: string | null;
  error_code: string | null;
  created_at: string;
  completed_at: string | null;
  result: { output_path: string; file_size_bytes: number; duration_seconds: number | null } | null;
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json().catch(() => null) };
}
