/**
 * Jobs through the HTTP API, as a client sees them: submit, poll until final, fetch the file through
 * `GET /job/{id}/file` (hashing the bytes as they arrive), delete. The same calls for embedded
 * `gabe serve` and for a cluster's API node.
 */
import { createHash } from 'node:crypto';
import { type ApiJob, postJson } from './serve.js';

export type JobType = 'hls' | 'mp4';

export interface Submitted {
  id: string;
  type: JobType;
  /** performance.now() when the POST was sent. */
  sentAt: number;
  /** Date.now() then, to compare with the job's own timestamps. */
  sentAtMs: number;
}

export interface Finished extends Submitted {
  job: ApiJob;
  /** performance.now() when the final state was seen. */
  seenAt: number;
}

const FINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Every job gets the same video_name: a file carries its name as its title (©nam), and the runs
 * compare each output's SHA-256 with the first one's.
 */
const VIDEO_NAME = 'bench';

export async function submitJob(api: string, type: JobType, url: string): Promise<Submitted> {
  const sentAt = performance.now();
  const sentAtMs = Date.now();
  const { status, json } = await postJson(`${api}${type === 'hls' ? '/download/' : '/download/mp4'}`, {
    url,
    video_name: VIDEO_NAME,
  });
  const job = json as ApiJob | null;
  if (status !== 200 || !job?.job_id) throw new Error(`submit answered ${status}: ${JSON.stringify(json)}`);
  return { id: job.job_id, type, sentAt, sentAtMs };
}

/** Seconds from the POST to the job's `started_at` (a worker took it), from the job's own timestamp. */
export function queuedSeconds(f: Finished): number | null {
  const started = (f.job as ApiJob & { started_at?: string | null }).started_at;
  return started ? (Date.parse(started) - f.sentAtMs) / 1000 : null;
}

export async function getJob(api: string, id: string): Promise<ApiJob> {
  const res = await fetch(`${api}/job/${id}`);
  if (res.status !== 200) throw new Error(`GET /job/${id} answered ${res.status}`);
  return (await res.json()) as ApiJob;
}

/**
 * Polls every unfinished job every `pollMs` until all are final or the deadline passes (then the
 * unfinished ones come back with their last state). `onPoll` sees every answer (progress lines).
 */
export async function waitAll(
  api: string,
  jobs: Submitted[],
  o: { pollMs: number; timeoutMs: number; onPoll?: (s: Submitted, job: ApiJob) => void },
): Promise<Finished[]> {
  const deadline = performance.now() + o.timeoutMs;
  const done = new Map<string, Finished>();
  const last = new Map<string, ApiJob>();
  while (done.size < jobs.length && performance.now() < deadline) {
    const open = jobs.filter((j) => !done.has(j.id));
    const answers = await Promise.all(open.map((j) => getJob(api, j.id)));
    const now = performance.now();
    open.forEach((s, i) => {
      const job = answers[i]!;
      last.set(s.id, job);
      o.onPoll?.(s, job);
      if (FINAL.has(job.status)) done.set(s.id, { ...s, job, seenAt: now });
    });
    if (done.size < jobs.length) await sleep(o.pollMs);
  }
  return jobs.map((s) => done.get(s.id) ?? { ...s, job: last.get(s.id)!, seenAt: Number.NaN });
}

/** SHA-256 of `GET /job/{id}/file` (optionally a Range), and the status and length seen. */
export async function fetchFile(
  api: string,
  id: string,
  range?: string,
): Promise<{ status: number; bytes: number; sha256: string; contentRange: string | null; head: Buffer }> {
  const res = await fetch(`${api}/job/${id}/file`, range ? { headers: { range } } : {});
  const h = createHash('sha256');
  let bytes = 0;
  let head = Buffer.alloc(0);
  if (res.body) {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      h.update(chunk);
      if (head.length < 16) head = Buffer.concat([head, Buffer.from(chunk.subarray(0, 16 - head.length))]);
      bytes += chunk.length;
    }
  }
  return {
    status: res.status,
    bytes,
    sha256: h.digest('hex'),
    contentRange: res.headers.get('content-range'),
    head,
  };
}

/** DELETE of a finished job: its output (the S3 object in a cluster) goes with it. */
export async function deleteJob(api: string, id: string): Promise<void> {
  const res = await fetch(`${api}/job/${id}`, { method: 'DELETE' });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`DELETE /job/${id} answered ${res.status}`);
}
