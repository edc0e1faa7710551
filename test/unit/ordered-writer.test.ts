/**
 * The segment window of an HLS track (src/pipeline/hls/ordered-writer.ts): requests finish in any
 * order, the track file and the sink get them in playlist order, checkpoints are throttled, and the
 * first failure stops the window. Real files in a temp folder; the fetches are timers standing in for
 * the network, which is not what is tested here.
 */
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdaptiveConcurrency } from '../../src/pipeline/adaptive.js';
import { BufferPool } from '../../src/pipeline/buffer-pool.js';
import { CHECKPOINT_MS } from '../../src/pipeline/checkpoint-timing.js';
import { readCheckpoint, type TrackCheckpoint } from '../../src/pipeline/hls/checkpoint.js';
import { SegmentBudget } from '../../src/pipeline/hls/memory-budget.js';
import { OrderedWriter, type OrderedWriterOptions } from '../../src/pipeline/hls/ordered-writer.js';
import type { Fetched } from '../../src/pipeline/hls/segment-fetch.js';
import { emptyPlan, type Fetch, type TrackPlan } from '../../src/pipeline/hls/track-plan.js';
import { ProgressTracker } from '../../src/pipeline/progress.js';
import { tempDir } from '../helpers/tmp.js';

/** A plan of `n` one-segment fetches of one second each, media sequence 100 on. */
function planOf(n: number): TrackPlan {
  const plan = emptyPlan();
  for (let i = 0; i < n; i++) {
    const url = `http://127.0.0.1/seg${i}.ts`;
    const piece = { kind: 'segment' as const, index: i, msn: 100 + i, url, range: null, decrypt: null };
    plan.pieces.push({ ...piece, duration: 1, run: 0 });
    plan.fetches.push({ url, range: null, pieces: [plan.pieces[i]!] });
  }
  plan.segmentCount = n;
  plan.duration = n;
  plan.runDurations = [n];
  return plan;
}

/** Segment i's bytes: its index, repeated, so the file's order can be read back. */
const body = (i: number) => Buffer.from(`[segment ${String(i).padStart(3, '0')}]`);

async function writerFor(n: number, o: Partial<OrderedWriterOptions> & { delayMs: (i: number) => number }) {
  const file = path.join(tempDir('ordered-writer-'), 'video.track');
  const out = await open(file, 'a');
  const plan = planOf(n);
  const started: number[] = [];
  const pool = new BufferPool();
  const writer = new OrderedWriter({
    plan,
    file,
    out,
    from: { fetches: 0, bytes: 0, segments: 0, lastMsn: -1, seconds: 0, runStarts: [] },
    fingerprint: 'fp',
    limit: new AdaptiveConcurrency({ initial: 4, max: 4 }),
    budget: new SegmentBudget(),
    pool,
    stop: new AbortController(),
    progress: new ProgressTracker(),
    reportProgress: () => {},
    fetch: async (f: Fetch): Promise<Fetched> => {
      const i = f.pieces[0]!.index;
      started.push(i);
      await sleep(o.delayMs(i));
      const b = body(i);
      const buf = pool.take(b.length);
      b.copy(buf);
      return { buffers: [buf], spill: null };
    },
    ...o,
  });
  return { writer, file, out, started, plan };
}

describe('OrderedWriter', () => {
  it('writes requests that finish out of order into the file and the sink in playlist order', async () => {
    const sunk: string[] = [];
    const seen: number[] = [];
    // Later segments finish first: 3, 2, 1, 0 within each window of four.
    const { writer, file, out } = await writerFor(12, {
      delayMs: (i) => (3 - (i % 4)) * 15,
      sink: {
        async write(chunks) {
          sunk.push(Buffer.concat(chunks).toString());
          return undefined;
        },
      },
      onData: (_buffers, fetch) => {
        if (fetch) seen.push(fetch.pieces[0]!.index);
      },
    });
    await writer.run();
    await out.close();
    const expected = Array.from({ length: 12 }, (_, i) => body(i).toString());
    assert.equal(await readFile(file, 'utf8'), expected.join(''));
    assert.deepEqual(sunk, expected);
    assert.deepEqual(seen, [...Array(12).keys()]);
    const w = writer.written;
    assert.deepEqual(
      { fetches: w.fetches, segments: w.segments, seconds: w.seconds, lastMsn: w.lastMsn },
      { fetches: 12, segments: 12, seconds: 12, lastMsn: 111 },
    );
    assert.equal(w.bytes, expected.join('').length);
  });

  it(`checkpoints at most every ${CHECKPOINT_MS} ms, and once more when the last write is in`, async () => {
    const saved: { at: number; cp: TrackCheckpoint }[] = [];
    const n = 40;
    const { writer, file, out } = await writerFor(n, {
      // One segment in about every 20 ms: about 800 ms of writes.
      delayMs: () => 20,
      limit: new AdaptiveConcurrency({ initial: 1, max: 1 }),
      saveCheckpoint: async (cp) => {
        saved.push({ at: Date.now(), cp: structuredClone(cp) });
      },
    });
    await writer.run();
    await out.close();
    assert.ok(saved.length >= 2, `${saved.length} checkpoints`);
    assert.ok(saved.length < n / 2, `${saved.length} checkpoints for ${n} writes: not throttled`);
    // Every gap but the last (the final write's own checkpoint) is at least CHECKPOINT_MS (less a
    // millisecond: the writer reads the clock just before the save does).
    for (let k = 1; k < saved.length - 1; k++) {
      const gap = saved[k]!.at - saved[k - 1]!.at;
      assert.ok(gap >= CHECKPOINT_MS - 1, `checkpoints ${k - 1} and ${k} ${gap} ms apart`);
    }
    const last = saved.at(-1)!.cp;
    assert.equal(last.fetches, n);
    assert.equal(last.segments, n);
    assert.equal(last.lastMsn, 100 + n - 1);
    assert.equal(last.fingerprint, 'fp');
    assert.equal(last.bytes, (await readFile(file)).length);
    // Saved through saveCheckpoint only: nothing beside the track file.
    assert.equal(await readCheckpoint(file, 'fp'), null);
  });

  it('saves its checkpoint beside the track file by default', async () => {
    const { writer, file, out } = await writerFor(5, { delayMs: () => 1 });
    await writer.run();
    await out.close();
    const cp = await readCheckpoint(file, 'fp');
    assert.equal(cp?.fetches, 5);
    assert.equal(cp?.bytes, (await readFile(file)).length);
  });

  it('stops the window at a failed write: the run fails with its error, no request starts after it', async () => {
    const stop = new AbortController();
    let writes = 0;
    const { writer, file, out, started } = await writerFor(40, {
      delayMs: () => 5,
      limit: new AdaptiveConcurrency({ initial: 2, max: 2 }),
      stop,
      sink: {
        async write() {
          writes++;
          if (writes === 3) throw new Error('the merge went away');
          return undefined;
        },
      },
    });
    await assert.rejects(writer.run(), /the merge went away/);
    const startedAtFailure = started.length;
    assert.ok(stop.signal.aborted, 'the requests in flight were told to stop');
    await sleep(100);
    await out.close();
    assert.equal(started.length, startedAtFailure, 'requests started after the failure');
    assert.ok(started.length < 40, `all ${started.length} requests ran`);
    // The third segment's bytes went to the file with the failed sink write; nothing after them.
    assert.equal(await readFile(file, 'utf8'), [0, 1, 2].map((i) => body(i).toString()).join(''));
    assert.equal(writer.written.fetches, 2);
  });
});
