/** What the store contract's cases (test/helpers/store-contract*.ts) share: the factory's shape and jobs. */

import type { TestContext } from 'node:test';
import type { AdmissionLimits, JobStore, NewJob } from '../../src/jobs/job-store.js';
import { type Job, type JobResult, JobStatus } from '../../src/jobs/types.js';

export interface OpenedStore {
  store: JobStore;
  /** Another instance on the same data through its own connection: a second API node. */
  second(): Promise<JobStore>;
  /** Closes both instances and whatever they were opened on. */
  close(): Promise<void>;
}

/** A fresh, empty store each call. */
export type StoreFactory = () => Promise<OpenedStore>;

export const LIMITS: AdmissionLimits = { maxQueueSize: 1000, maxJobsPerIp: 0 };
export const STATES = Object.values(JobStatus);

export const newJob = (over: Partial<NewJob> = {}): NewJob => ({
  type: 'mp4',
  request: { url: 'https://example.com/a.mp4' },
  clientIp: '10.0.0.1',
  videoName: 'a',
  ...over,
});

export const RESULT: JobResult = {
  status: 'completed',
  output_path: '/out/a.mp4',
  resolution: null,
  video_name: 'a',
  original_url: 'https://example.com/a.mp4',
  file_size_mb: 1.25,
  file_size_bytes: 1310720,
  duration_seconds: null,
  segment_count: null,
  container: 'mp4',
};

export const JOB_FIELDS = [
  'attempts',
  'client_ip',
  'completed_at',
  'created_at',
  'downloaded_bytes',
  'downloaded_segments',
  'error',
  'error_code',
  'eta_seconds',
  'id',
  'owner',
  'progress',
  'recorded_seconds',
  'request',
  'result',
  'seq',
  'speed_bps',
  'started_at',
  'status',
  'total_bytes',
  'total_segments',
  'type',
  'updated_at',
  'video_name',
];

/** A job brought to `status` through allowed transitions. */
export async function jobIn(store: JobStore, status: JobStatus, over: Partial<NewJob> = {}): Promise<Job> {
  const job = await store.admit(newJob(over), LIMITS);
  if (status === 'PENDING') return job;
  const running = await store.transition(job.id, 'PROCESSING');
  if (status === 'PROCESSING') return running!;
  return (await store.transition(job.id, status))!;
}

export const ids = (jobs: Job[]) => jobs.map((j) => j.id);

/** Opens a fresh store for one test and closes it when the test ends. */
export type Fresh = (t: TestContext) => Promise<OpenedStore>;
