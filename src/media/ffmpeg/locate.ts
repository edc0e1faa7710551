import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { GabeError } from '../../service/errors.js';

const execFileAsync = promisify(execFile);

export interface FfmpegTools {
  ffmpeg: string;
  ffprobe: string;
  /** Where they were found: the config, PATH, or the npm packages shipped as optional dependencies. */
  source: 'config' | 'path' | 'bundled';
  version: string;
  /** Set when the tools work but have a known weakness the user should hear about. */
  warning: string | null;
}

function findOnPath(name: string, envPath: string | undefined): string | null {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this folder
    }
  }
  return null;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function versionOf(binary: string): Promise<string> {
  const { stdout } = await execFileAsync(binary, ['-version'], { timeout: 15_000 });
  return stdout.split('\n')[0]?.trim() ?? 'unknown';
}

/** ffmpeg_path may name the ffmpeg binary or the folder that holds both tools. */
function fromConfig(ffmpegPath: string): { ffmpeg: string; ffprobe: string } {
  const isDir = existsSync(ffmpegPath) && statSync(ffmpegPath).isDirectory();
  if (isDir) return { ffmpeg: path.join(ffmpegPath, 'ffmpeg'), ffprobe: path.join(ffmpegPath, 'ffprobe') };
  if (!ffmpegPath.includes('/')) {
    const onPath = findOnPath(ffmpegPath, process.env['PATH']);
    return { ffmpeg: onPath ?? ffmpegPath, ffprobe: findOnPath('ffprobe', process.env['PATH']) ?? 'ffprobe' };
  }
  const dir = path.dirname(ffmpegPath);
  const probeName = path.basename(ffmpegPath).replace(/ffmpeg/i, 'ffprobe');
  return {
    ffmpeg: ffmpegPath,
    ffprobe: path.join(dir, probeName === path.basename(ffmpegPath) ? 'ffprobe' : probeName),
  };
}

function fromBundledPackages(): { ffmpeg: string; ffprobe: string } | null {
  const require = createRequire(import.meta.url);
  try {
    const ffmpeg = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
    const ffprobe = (require('@ffprobe-installer/ffprobe') as { path: string }).path;
    return existsSync(ffmpeg) && existsSync(ffprobe) ? { ffmpeg, ffprobe } : null;
  } catch {
    return null;
  }
}

export const FFMPEG_HELP =
  'Install it (Debian/Ubuntu: `sudo apt-get install ffmpeg`; macOS: `brew install ffmpeg`) or set "ffmpeg_path" in config.json.';

export interface LocateOptions {
  ffmpegPath: string | null;
  envPath?: string | undefined;
  /** The npm-shipped builds are the last resort; tests turn them off to prove the failure message. */
  allowBundled?: boolean;
  /**
   * false: trust executables found on PATH without running `ffmpeg -version` (0.1 s of CPU that a
   * one-shot `gabe download` would pay on every run); a broken one fails the merge with its error.
   */
  verifyPath?: boolean;
}

/**
 * Finds working ffmpeg and ffprobe: `ffmpeg_path` first, then PATH, then the static builds shipped in
 * @ffmpeg-installer/@ffprobe-installer so a machine without ffmpeg still works. An explicit
 * ffmpeg_path that does not work is an error, never silently replaced by another ffmpeg.
 */
export async function locateFfmpeg(options: LocateOptions): Promise<FfmpegTools> {
  if (options.ffmpegPath) {
    const tools = fromConfig(options.ffmpegPath);
    for (const [name, bin] of Object.entries(tools)) {
      try {
        await versionOf(bin);
      } catch (err) {
        throw new GabeError(
          'FFMPEG_MISSING',
          `${name} not usable at "${bin}" (from ffmpeg_path "${options.ffmpegPath}"): ${(err as Error).message}. ${FFMPEG_HELP}`,
          { cause: err },
        );
      }
    }
    return { ...tools, source: 'config', version: await versionOf(tools.ffmpeg), warning: null };
  }
  const envPath = options.envPath ?? process.env['PATH'];
  const ffmpeg = findOnPath('ffmpeg', envPath);
  const ffprobe = findOnPath('ffprobe', envPath);
  if (ffmpeg && ffprobe && options.verifyPath === false && isExecutable(ffmpeg) && isExecutable(ffprobe)) {
    return { ffmpeg, ffprobe, source: 'path', version: 'unknown (not checked)', warning: null };
  }
  if (ffmpeg && ffprobe) {
    try {
      return { ffmpeg, ffprobe, source: 'path', version: await versionOf(ffmpeg), warning: null };
    } catch {
      // A broken binary on PATH: fall through to the bundled build.
    }
  }
  const bundled = options.allowBundled === false ? null : fromBundledPackages();
  if (bundled) {
    try {
      const version = await versionOf(bundled.ffmpeg);
      await versionOf(bundled.ffprobe);
      return {
        ...bundled,
        source: 'bundled',
        version,
        // @ffmpeg-installer ships a 2018 build: it remuxes, but misses years of HLS and fMP4 fixes.
        warning: `using the ffmpeg bundled with npm (${version}); it is old. ${FFMPEG_HELP}`,
      };
    } catch {
      // The package exists but its binary does not run on this platform.
    }
  }
  const missing = [!ffmpeg && 'ffmpeg', !ffprobe && 'ffprobe'].filter(Boolean).join(' and ') || 'ffmpeg';
  throw new GabeError('FFMPEG_MISSING', `${missing} not found on PATH. ${FFMPEG_HELP}`);
}
