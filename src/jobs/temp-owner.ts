/**
 * Which temp folder a run of a job may use. A run resumes from the partial files an earlier run left
 * only when that run is certainly over: this process's own earlier run (stopped before this one began),
 * or one of a process on this host that is no longer alive (a crash, kill -9). When the earlier run may
 * still be writing (a cluster worker whose lock expired while Redis was away, on this host or on
 * another that shares temp_path), two runs in one folder would corrupt each other's files: this run
 * starts afresh in a folder of its own, `<job id>-<attempt>`, and the other stops when it learns it
 * lost the job.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from '../service/log.js';
import { jobTempDir } from '../storage/paths.js';
import type { Job } from './types.js';

const OWNER_FILE = 'owner.json';

interface Owner {
  host: string;
  pid: number;
  attempt: number;
}

async function readOwner(dir: string): Promise<Owner | null> {
  try {
    const o = JSON.parse(await readFile(path.join(dir, OWNER_FILE), 'utf8')) as Partial<Owner>;
    return typeof o.host === 'string' && typeof o.pid === 'number' ? (o as Owner) : null;
  } catch {
    return null;
  }
}

/** True unless `owner` is known to be over: this very process, or a dead process of this host. */
export function mayStillRun(owner: Owner, self = { host: hostname(), pid: process.pid }): boolean {
  if (owner.host !== self.host) return true;
  if (owner.pid === self.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    // EPERM: a live process of another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The run's temp folder, made and marked as this process's. */
export async function claimTempDir(tempRoot: string, job: Job, log: Logger): Promise<string> {
  const base = jobTempDir(tempRoot, job.id);
  const owner = await readOwner(base);
  let dir = base;
  if (owner && mayStillRun(owner)) {
    dir = `${base}-${job.attempts}`;
    await rm(dir, { recursive: true, force: true });
    log.warn(
      { previous: { host: owner.host, pid: owner.pid, attempt: owner.attempt } },
      'an earlier run of this job may still be writing its files; this run starts afresh in a folder of its own',
    );
  }
  await mkdir(dir, { recursive: true });
  const mine: Owner = { host: hostname(), pid: process.pid, attempt: job.attempts };
  await writeFile(path.join(dir, OWNER_FILE), JSON.stringify(mine));
  return dir;
}
