import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { FfmpegExitError, GabeError } from '../../service/errors.js';

export interface RunOptions {
  signal?: AbortSignal | undefined;
  /** ms between SIGTERM and SIGKILL when aborted (cobalt's pattern: let ffmpeg close its files first). */
  killGraceMs?: number;
  /**
   * Input pipes to open: the first is stdin (`pipe:0`), the next ones fds 3, 4, … (`pipe:3`, …).
   * `onInputs` receives them so a caller can stream data in; without it stdin is ignored.
   */
  inputs?: { count: number; onInputs: (inputs: Writable[]) => void };
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
    const pipes = options.inputs?.count ?? 0;
    const extra = Array.from({ length: Math.max(0, pipes - 1) }, () => 'pipe' as const);
    const child = spawn(binary, args, { stdio: [pipes > 0 ? 'pipe' : 'ignore', 'pipe', 'pipe', ...extra] });
    const out: Buffer[] = [];
    let err = '';
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.length > STDERR_KEEP * 2) err = err.slice(-STDERR_KEEP);
    });
    if (options.inputs) {
      const inputs = [child.stdio[0], ...child.stdio.slice(3)] as Writable[];
      // A tool that exits early (bad input) closes its pipes: the writer sees EPIPE, handled by its own
      // listener; without one here it would be an uncaught exception.
      for (const input of inputs) input.on('error', () => {});
      options.inputs.onInputs(inputs);
    }
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
      } else if (code === 0 && !/Error writing trailer/i.test(err)) {
        resolve({ stdout: Buffer.concat(out), stderr: err });
      } else {
        // ffmpeg 5.1 exits 0 when it could not write the trailer (where an MP4 keeps its moov): the
        // file is unusable, so that is a failure like any other.
        const tail = err.trim().split('\n').slice(-6).join('\n');
        if (/No space left on device/i.test(err)) {
          reject(new GabeError('DISK_FULL', `no space left on the device while ffmpeg was writing: ${tail}`));
          return;
        }
        reject(
          new FfmpegExitError(`${binary} exited with ${sig ?? `code ${code}`}: ${tail}`, err.slice(-4000)),
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

/**
 * Demuxers ffmpeg may pick for downloaded data, by content probing. Downloaded bytes are untrusted: left
 * to probe freely, a "segment" or "video" holding a playlist or script makes ffmpeg open the hls,
 * concat, dash, sdp or image2 demuxer, which read other files or URLs (file:///etc/passwd into the
 * output). Containers only: none of these opens anything beyond its own input.
 */
export const VIDEO_DEMUXERS = 'mov,matroska,mpegts,flv,avi,asf,mpeg,ogg,aac,mp3,ac3,eac3,wav,flac';
/** What HLS media segments are (RFC 8216 3): MPEG-TS, fMP4 (mov), packed audio. */
export const SEGMENT_DEMUXERS = 'mpegts,mov,aac,mp3,ac3,eac3';

/** Input options that confine ffmpeg/ffprobe to reading one local file or pipe as a plain container. */
export function safeInput(kind: 'file' | 'pipe' | 'file,subfile', demuxers: string): string[] {
  return ['-protocol_whitelist', kind, '-format_whitelist', demuxers];
}

export async function ffprobe(
  binary: string,
  input: string,
  signal?: AbortSignal,
  demuxers: string = VIDEO_DEMUXERS,
): Promise<ProbeResult> {
  const { stdout } = await runTool(
    binary,
    ['-v', 'error', ...safeInput('file', demuxers), '-show_format', '-show_streams', '-of', 'json', input],
    { signal },
  );
  const parsed = JSON.parse(stdout.toString()) as Partial<ProbeResult>;
  return { format: parsed.format ?? { format_name: '' }, streams: parsed.streams ?? [] };
}
