import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../service/config.js';
import type { Logger } from '../service/log.js';
import { removeDir } from '../storage/paths.js';
import type { ResultStore } from '../storage/results.js';
import type { JobStore } from './job-store.js';

const HOUR_MS = 60 * 60 * 1000;
/** `<job id>`, or `<job id>-<attempt>` for a run that could not share the first (jobs/temp-owner.ts). */
const JOB_DIR = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(-\d+)?$/i;

export interface CleanupReport {
  jobs: number;
  tempDirs: number;
}

/**
 * Deletes final jobs older than clean_jobs_after_days with their files, and temp folders that belong to
 * no PENDING or PROCESSING job (left by a crash or by a job deleted while its files were being written).
 */
export async function cleanupOnce(
  store: JobStore,
  results: ResultStore,
  config: Config,
  log: Logger,
  now = Date.now(),
): Promise<CleanupReport> {
  let jobs = 0;
  if (config.clean_jobs_after_days > 0) {
    const cutoff = new Date(now - config.clean_jobs_after_days * 24 * HOUR_MS).toISOString();
    for (;;) {
      const batch = await store.finishedBefore(cutoff);
      if (batch.length === 0) break;
      for (const job of batch) {
        await results.remove(job);
        await store.delete(job.id);
        jobs++;
      }
    }
  }
  let tempDirs = 0;
  let entries: string[] = [];
  try {
    entries = await readdir(config.temp_path);
  } catch {
    // no temp folder yet
  }
  const candidates = entries.filter((name) => JOB_DIR.test(name));
  if (candidates.length > 0) {
    for (const name of candidates) {
      const job = await store.get(JOB_DIR.exec(name)![1]!);
      if (job && (job.status === 'PENDING' || job.status === 'PROCESSING')) continue;
      await removeDir(path.join(config.temp_path, name));
      tempDirs++;
    }
  }
  if (jobs > 0 || tempDirs > 0) log.info({ jobs, temp_dirs: tempDirs }, 'cleanup removed old jobs and files');
  return { jobs, tempDirs };
}

/** Runs cleanup now and then hourly; returns a stop function. */
export function scheduleCleanup(
  store: JobStore,
  results: ResultStore,
  config: Config,
  log: Logger,
  intervalMs = HOUR_MS,
): () => void {
  const run = () => {
    cleanupOnce(store, results, config, log).catch((err: unknown) => log.error({ err }, 'cleanup failed'));
  };
  run();
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
