import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { JobRequest, JobResult, JobType } from '../jobs/types.js';
import type { FfmpegTools } from '../media/ffmpeg/locate.js';
import { HttpClient } from '../net/client.js';
import { transferLimits } from '../net/deadlines.js';
import { mergeHeaders } from '../net/headers.js';
import type { Downloader, JobSpec } from '../pipeline/context.js';
import { detectKind } from '../pipeline/detect.js';
import { hlsDownloader } from '../pipeline/hls/job.js';
import { mp4Downloader } from '../pipeline/mp4/job.js';
import { ProgressTracker } from '../pipeline/progress.js';
import type { Config } from '../service/config.js';
import type { Logger } from '../service/log.js';
import { nameFromUrl, sanitizeName } from '../storage/names.js';
import { removeDir } from '../storage/paths.js';

const DOWNLOADERS: Record<JobType, Downloader> = { hls: hlsDownloader, mp4: mp4Downloader };

export interface LocalDownloadOptions {
  url: string;
  /** Output file; default: `<name from URL>.mp4` in the current folder. */
  output?: string;
  resolution?: string;
  proxy?: string;
  config: Config;
  ffmpeg: FfmpegTools;
  log: Logger;
  signal: AbortSignal;
  /** Called about four times a second with the tracker, for progress display. */
  onProgress?: (tracker: ProgressTracker) => void;
  /** More of the job's request (headers, key, audio and subtitle choices, max_duration). */
  request?: Omit<JobRequest, 'url'>;
  /** Live recordings: aborting it stops the recording and keeps what was recorded. */
  stop?: AbortSignal;
  /** Called once the URL turns out to be a live stream that is being recorded. */
  onLive?: () => void;
}

/**
 * `gabe download`: the service's own downloaders run in this process, for a job that never touches
 * the database. Same pipeline, same errors, same output checks.
 */
export async function downloadLocally(o: LocalDownloadOptions): Promise<JobResult> {
  const id = randomUUID();
  const outputFile = o.output ? path.resolve(o.output) : null;
  const videoName = outputFile ? sanitizeName(path.basename(outputFile)) : nameFromUrl(o.url);
  const config: Config = Object.freeze({
    ...o.config,
    output_path: outputFile ? path.dirname(outputFile) : process.cwd(),
    temp_path: path.join(tmpdir(), 'gabe-cli'),
    // The destination guard protects a service from its callers; `gabe download` runs for the local
    // user, who may fetch from their own LAN or loopback like curl would.
    allow_private_networks: true,
  });
  const probeClient = new HttpClient({
    ...transferLimits(config),
    proxy: o.proxy ?? config.proxy,
    allowPrivateNetworks: config.allow_private_networks,
    headers: mergeHeaders(config.headers, o.request?.headers),
    jobUrl: o.url,
  });
  let type: JobType;
  try {
    type = await detectKind(probeClient, o.url, o.signal);
  } finally {
    await probeClient.destroy();
  }
  const job: JobSpec = {
    id,
    type,
    request: { ...o.request, url: o.url, resolution: o.resolution ?? null, proxy: o.proxy ?? null },
    video_name: videoName,
  };

  const tempDir = path.join(config.temp_path, id);
  await mkdir(tempDir, { recursive: true });
  const tracker = new ProgressTracker();
  let last = 0;
  try {
    return await DOWNLOADERS[type].run({
      job,
      config,
      ffmpeg: o.ffmpeg,
      log: o.log.child({ job_id: id }),
      signal: o.signal,
      tempDir,
      progress: tracker,
      reportProgress: () => {
        const now = Date.now();
        if (now - last < 250) return;
        last = now;
        o.onProgress?.(tracker);
      },
      markLive: () => {
        o.onLive?.();
        return o.stop ?? new AbortController().signal;
      },
    });
  } finally {
    await removeDir(tempDir);
  }
}
