/**
 * A DASH job resumes like an HLS one (same track files and checkpoints, keyed by $Number$): after
 * kill -9 of a real `gabe serve`, the restarted service fetches only the segments it did not have,
 * and the file has the frames and samples of the representations' own files.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JobResponse } from '../../src/api/schemas.js';
import { gabe, waitForOutput } from '../helpers/cli.js';
import { type DashFixture, dashSourceReference, makeDash } from '../helpers/dash-fixtures.js';
import { decodedHash } from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { tempDir } from '../helpers/tmp.js';

async function waitJob(base: string, id: string, done: (j: JobResponse) => boolean): Promise<JobResponse> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = (await (await fetch(`${base}/job/${id}`)).json()) as JobResponse;
    if (done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} stuck: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `gabe serve` as a real child process on its own config folder. */
async function serveChild(dir: string) {
  const file = path.join(dir, 'config.json');
  const config = {
    allow_private_networks: true,
    max_jobs_per_ip: 0,
    segment_concurrency: 2,
    segment_concurrency_max: 2,
  };
  writeFileSync(file, JSON.stringify(config));
  const run = gabe(['serve', '--config', file, '--port', '0']);
  const [, url] = await waitForOutput(run.output, /listening on (http:\/\/\S+)/);
  return { ...run, url: url! };
}

describe('DASH resume', () => {
  let origin: Origin;
  let fx: DashFixture;
  before(async () => {
    origin = await startOrigin();
    fx = await makeDash({ mode: 'timeline', seconds: 20 });
    origin.serveDir('/d/', fx.dir);
  });
  after(() => origin.close());

  it('after kill -9 mid-job, a restarted service fetches only the missing segments and completes', async () => {
    const segment = /\/d\/chunk-stream\d-\d+\.m4s$/;
    const total = fx.video[0]!.length - 1 + fx.audio[0]!.length - 1;
    origin.addFault({ match: segment, latencyMs: 150 });
    const dir = tempDir();
    const first = await serveChild(dir);
    const res = await fetch(`${first.url}/download/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${origin.url}/d/${fx.mpdName}` }),
    });
    assert.equal(res.status, 200);
    const id = ((await res.json()) as JobResponse).job_id;
    await waitJob(first.url, id, (j) => j.downloaded_segments >= total / 2);
    first.child.kill('SIGKILL');
    await first.exit;
    const before = origin.countRequests(segment);
    assert.ok(before < total, 'killed before the end');

    const second = await serveChild(dir);
    try {
      const done = await waitJob(second.url, id, (j) => j.status === 'COMPLETED' || j.status === 'FAILED');
      assert.equal(done.status, 'COMPLETED', done.error ?? '');
      assert.equal(done.result!.source_format, 'dash');
      const fetched = origin.countRequests(segment);
      // Only what was in flight when the process died (2 per track), or written since the track's last
      // checkpoint, is fetched twice: the same margin as the HLS test's (reliability.test.ts), four
      // times the concurrency per track. Fetching everything again would be 20 more.
      assert.ok(fetched <= total + 2 * 2 * 4, `${fetched} segment requests for ${total} segments`);
      const ref = await dashSourceReference(fx);
      assert.equal(await decodedHash(done.result!.output_path, 'v'), await decodedHash(ref.video, 'v'));
      assert.equal(await decodedHash(done.result!.output_path, 'a'), await decodedHash(ref.audio, 'a'));
    } finally {
      second.child.kill('SIGTERM');
      await second.exit;
    }
  });
});
