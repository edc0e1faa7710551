/**
 * The test S3 server (s3-server.ts) in a process of its own, so its CPU and memory are not mixed with
 * the caller's: the cluster bench counts them apart.
 *
 * ```ts
 * const s3 = await startS3Process();   // s3.config: storage.s3 settings; s3.pid
 * await startCluster({ s3: s3.config });
 * await s3.stop();                      // SIGTERM; its objects are removed with its temp folder
 * ```
 *
 * Run directly (`node --import tsx test/helpers/s3-process.ts`) it prints one JSON line, the settings.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type S3Settings, startS3Server } from './s3-server.js';

export interface S3Process {
  config: S3Settings;
  pid: number;
  stop(): Promise<void>;
}

const SELF = fileURLToPath(import.meta.url);

export async function startS3Process(): Promise<S3Process> {
  const child: ChildProcess = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), SELF], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  const stopOnExit = () => child.kill('SIGKILL');
  process.once('exit', stopOnExit);
  const config = await new Promise<S3Settings>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as S3Settings);
    });
    child.once('exit', (code) => reject(new Error(`the S3 server process exited (${code})`)));
  });
  return {
    config,
    pid: child.pid!,
    async stop() {
      process.off('exit', stopOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function main(): Promise<void> {
  const s3 = await startS3Server();
  process.stdout.write(`${JSON.stringify(s3.config)}\n`);
  const stop = () => void s3.close().finally(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  main().catch((err: unknown) => {
    process.stderr.write(`s3 server: ${String(err)}\n`);
    process.exit(1);
  });
}
