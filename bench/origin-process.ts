/**
 * The bench origin (bench/origin.ts) in its own process, so its CPU never lands on what is measured.
 * Used by the main bench and the cluster bench alike.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OriginStats } from './origin.js';

export interface OriginProcess {
  url: string;
  child: ChildProcess;
  stats(reset: boolean): Promise<OriginStats | null>;
  stop(): void;
}

const ORIGIN_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'origin.ts');

export async function startOriginProcess(o: {
  root: string;
  latencyMs: number;
  rateMbit: number;
}): Promise<OriginProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      ORIGIN_SCRIPT,
      '--root',
      o.root,
      '--latency-ms',
      String(o.latencyMs),
      '--rate-mbit',
      String(o.rateMbit),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`origin exited (${code})`)));
  });
  return {
    url,
    child,
    async stats(reset) {
      try {
        const res = await fetch(`${url}/__stats${reset ? '?reset=1' : ''}`);
        return (await res.json()) as OriginStats;
      } catch {
        return null;
      }
    },
    stop() {
      child.kill('SIGTERM');
    },
  };
}
