/**
 * The default result store (files stay in output_path) and the choice between it and S3.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Job, JobResult } from '../../src/jobs/types.js';
import { loadConfig } from '../../src/service/config.js';
import { createResultStore } from '../../src/storage/choose.js';
import { LocalResults } from '../../src/storage/local-results.js';
import { S3Results } from '../../src/storage/s3-results.js';
import { tempDir } from '../helpers/tmp.js';

const silent = pino({ level: 'silent' });

function result(output: string, subtitles: string[] = []): JobResult {
  return {
    status: 'completed',
    output_path: output,
    resolution: null,
    video_name: 'v',
    original_url: 'https://example.com/v.mp4',
    file_size_mb: 0,
    file_size_bytes: 0,
    duration_seconds: null,
    segment_count: null,
    container: 'mp4',
    subtitles: subtitles.map((p) => ({ language: 'en', name: 'en', path: p, cues: 0 })),
  };
}

describe('local result store', () => {
  it('publishes by leaving the result as it is, files in place', async () => {
    const out = tempDir();
    const file = path.join(out, 'v.mp4');
    writeFileSync(file, 'x');
    const r = result(file);
    assert.equal(
      await new LocalResults(out).publish(randomUUID(), r, new AbortController().signal, silent),
      r,
    );
    assert.equal(existsSync(file), true);
  });

  it('removes the file and its sidecars inside output_path, never a file outside it', async () => {
    const out = tempDir();
    const elsewhere = tempDir();
    const file = path.join(out, 'v.mp4');
    const vtt = path.join(out, 'v.en.vtt');
    const outside = path.join(elsewhere, 'keep.mp4');
    for (const f of [file, vtt, outside]) writeFileSync(f, 'x');
    const job = { id: randomUUID(), result: result(file, [vtt, outside]) } as Job;
    await new LocalResults(out).remove(job);
    assert.equal(existsSync(file), false);
    assert.equal(existsSync(vtt), false);
    assert.equal(existsSync(outside), true);
    // Already gone, or an s3:// path: nothing to do, no error.
    await new LocalResults(out).remove(job);
    await new LocalResults(out).remove({ ...job, result: result('s3://b/k.mp4') });
  });

  it('checks that output_path exists and is writable', async () => {
    const out = tempDir();
    assert.deepEqual(await new LocalResults(out).check(), { ok: true, kind: 'local', location: out });
    const missing = await new LocalResults(path.join(out, 'nope')).check();
    assert.equal(missing.ok, false);
    assert.match(missing.error ?? '', /ENOENT/);
    const file = path.join(out, 'a-file');
    writeFileSync(file, 'x');
    const notDir = await new LocalResults(file).check();
    assert.equal(notDir.ok, false);
    assert.match(notDir.error ?? '', /is not a folder/);
  });
});

describe('createResultStore', () => {
  const config = (storage: unknown) =>
    loadConfig({ file: path.join(tempDir(), 'config.json'), env: {}, overrides: { storage } });

  it('keeps files in output_path unless storage.s3.bucket is set', async () => {
    const local = await createResultStore(config({}), silent);
    assert.ok(local instanceof LocalResults);
    assert.equal(local.kind, 'local');
    const s3 = await createResultStore(
      config({ s3: { bucket: 'videos', endpoint: 'http://127.0.0.1:1', force_path_style: true } }),
      silent,
    );
    assert.ok(s3 instanceof S3Results);
    assert.equal(s3.kind, 's3');
    await s3.close();
  });
});
