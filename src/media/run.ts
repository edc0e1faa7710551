import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { GabeError } from '../errors.js';

export interface RunOptions {
  signal?: AbortSignal | undefined;
  /** ms between SIGTERM and SIGKILL when aborted (cobalt's pattern: let ffmpeg close its files first). */
  killGraceMs?: number;
  /** Receives ffmpeg's stdin so a caller can stream data in; stdin is ignored when absent. */
  onStdin?: (stdin: Writable) => void;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

const STDERR_KEEP = 64 * 1024;

/**
 * Runs ffmpeg or ffprobe. Arguments go as an array (never through a shell), so URLs and names need
 * no quoting. On abort: SIGTERM, then SIGKILL after the grace period; the promise rejects with
 * GABE_ERR_CANCELLED only after the process has exited, so callers can delete its files safely.
 */
export function runTool(
  binary: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const { signal, killGraceMs = 2000 } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new GabeError('CANCELLED', 'the job was cancelled'));
      return;
    }
    const child = spawn(binary, args, { stdio: [options.onStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.length > STDERR_KEEP * 2) err = err.slice(-STDERR_KEEP);
    });
    if (options.onStdin && child.stdin) options.onStdin(child.stdin);
    const onAbort = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), killGraceMs);
      killTimer.unref();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new GabeError('FFMPEG', `could not start ${binary}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, sig) => {
      signal?.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      if (signal?.aborted) {
        reject(new GabeError('CANCELLED', 'the job was cancelled'));
      } else if (code === 0) {
        resolve({ stdout: Buffer.concat(out), stderr: err });
      } else {
        const tail = err.trim().split('\n').slice(-6).join('\n');
        if (/No space left on device/i.test(err)) {
          reject(new GabeError('DISK_FULL', `no space left on the device while ffmpeg was writing: ${tail}`));
          return;
        }
        reject(
          new GabeError('FFMPEG', `${binary} exited with ${sig ?? `code ${code}`}: ${tail}`, {
            details: { stderr: err.slice(-4000) },
          }),
        );
      }
    });
  });
}

export interface ProbeStream {
  index: number;
  codec_type: string;
  codec_name?: string;
  width?: number;
  height?: number;
  duration?: string;
}

export interface ProbeResult {
  format: { format_name: string; duration?: string; size?: string; bit_rate?: string };
  streams: ProbeStream[];
}

export async function ffprobe(binary: string, input: string, signal?: AbortSignal): Promise<ProbeResult> {
  const { stdout } = await runTool(
    binary,
    ['-v', 'error', '-show_format', '-show_streams', '-of', 'json', input],
    { signal },
  );
  const parsed = JSON.parse(stdout.toString()) as Partial<ProbeResult>;
  return { format: parsed.format ?? { format_name: '' }, streams: parsed.streams ?? [] };
}
