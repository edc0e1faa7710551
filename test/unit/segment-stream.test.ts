/**
 * The pieces of a large body processed as they arrive (src/pipeline/hls/segment-stream.ts) and the memory
 * budget that decides what is held and what streams to disk (src/pipeline/hls/memory-budget.ts): pure, no I/O.
 */
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import { expectedBytes, SegmentBudget } from '../../src/pipeline/hls/memory-budget.js';
import { SegmentStream, type StreamPiece } from '../../src/pipeline/hls/segment-stream.js';
import type { Fetch, Piece } from '../../src/pipeline/hls/track-plan.js';
import { isGabeError } from '../../src/service/errors.js';

/** TS-like media: sync bytes every 188 bytes, the rest a counter, `packets` packets long. */
function ts(packets: number, seed: number): Buffer {
  const b = Buffer.alloc(packets * 188);
  for (let i = 0; i < b.length; i++) b[i] = i % 188 === 0 ? 0x47 : (i * 31 + seed) & 0xff;
  return b;
}

const PNG_HEADER = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...Buffer.alloc(60, 1)]);

function encrypt(data: Buffer, key: Buffer, iv: Buffer): Buffer {
  const c = createCipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

/** Feeds `body` in pieces of `size` bytes; returns what came out and the pieces' sizes. */
async function run(
  body: Buffer,
  pieces: StreamPiece[],
  size: number,
  o: { skip?: number; fmp4?: boolean; check?: (head: Buffer, piece: number) => void } = {},
) {
  const out: Buffer[] = [];
  const disguises: number[] = [];
  const s = new SegmentStream({
    pieces,
    skip: o.skip ?? 0,
    fmp4: o.fmp4 ?? false,
    check: o.check ?? (() => {}),
    onDisguise: (found) => disguises.push(found.offset),
    write: async (d) => {
      out.push(Buffer.from(d));
    },
  });
  for (let at = 0; at < body.length; at += size) await s.push(body.subarray(at, at + size));
  await s.end();
  return { data: Buffer.concat(out), sizes: s.sizes, disguises };
}

describe('a large body streamed into its pieces', () => {
  const key = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const iv = Buffer.from('0f0e0d0c0b0a09080706050403020100', 'hex');
  const a = ts(300, 1);
  const b = ts(200, 2);

  it('gives the bytes the whole-body path gives, whatever sizes the body arrives in', async () => {
    const encB = encrypt(b, key, iv);
    const body = Buffer.concat([
      Buffer.from('garbage before the range'),
      PNG_HEADER,
      a,
      encB,
      Buffer.alloc(50),
    ]);
    const pieces: StreamPiece[] = [
      { length: PNG_HEADER.length + a.length, decrypt: null, what: 'piece 0' },
      { length: encB.length, decrypt: { key, iv }, what: 'piece 1' },
    ];
    for (const size of [1, 7, 188, 16 * 1024, 64 * 1024, body.length]) {
      const got = await run(body, pieces, size, { skip: 'garbage before the range'.length });
      assert.ok(got.data.equals(Buffer.concat([a, b])), `in pieces of ${size} bytes`);
      assert.deepEqual(got.sizes, [a.length, b.length]);
      assert.deepEqual(got.disguises, [PNG_HEADER.length]);
    }
  });

  it('takes the rest of the body as the last piece when its length is not known', async () => {
    const got = await run(
      encrypt(a, key, iv),
      [{ length: null, decrypt: { key, iv }, what: 'segment' }],
      1000,
    );
    assert.ok(got.data.equals(a));
    assert.deepEqual(got.sizes, [a.length]);
  });

  it('leaves fMP4 alone (no disguise looked for) and checks the first bytes of every piece', async () => {
    const heads: number[] = [];
    const box = Buffer.concat([Buffer.from([0, 0, 0, 16]), Buffer.from('moof'), Buffer.alloc(40_000, 2)]);
    const got = await run(box, [{ length: null, decrypt: null, what: 'segment' }], 4096, {
      fmp4: true,
      check: (head) => heads.push(head.length),
    });
    assert.ok(got.data.equals(box));
    assert.equal(heads.length, 1);
    assert.ok(heads[0]! >= 16 * 1024, 'the check sees at least the first 16 KB');
  });

  it('fails as the check says before any byte of the piece goes out', async () => {
    const page = Buffer.from(`<!DOCTYPE html><html>${'x'.repeat(40_000)}</html>`);
    const written: number[] = [];
    const s = new SegmentStream({
      pieces: [{ length: null, decrypt: null, what: 'segment' }],
      skip: 0,
      fmp4: false,
      check: (head) => {
        if (head.subarray(0, 9).toString() === '<!DOCTYPE') throw new Error('an HTML page');
      },
      onDisguise: () => {},
      write: async (d) => {
        written.push(d.length);
      },
    });
    await assert.rejects(async () => {
      for (let at = 0; at < page.length; at += 1000) await s.push(page.subarray(at, at + 1000));
    }, /an HTML page/);
    assert.deepEqual(written, []);
  });

  it('fails with GABE_ERR_KEY on a wrong key, and with GABE_ERR_TRUNCATED when the body ends inside a piece', async () => {
    const wrong = Buffer.alloc(16, 9);
    await assert.rejects(
      run(encrypt(a, key, iv), [{ length: null, decrypt: { key: wrong, iv }, what: 'segment 4' }], 4096),
      (err) => isGabeError(err, 'KEY') && /segment 4/.test(err.message),
    );
    await assert.rejects(
      run(a.subarray(0, 1000), [{ length: a.length, decrypt: null, what: 'segment 5' }], 4096),
      (err) => isGabeError(err, 'TRUNCATED') && /segment 5/.test(err.message),
    );
  });
});

describe('the memory budget of a track', () => {
  const MB = 1024 * 1024;

  it('holds a body in memory only when it is small and fits under the cap; anything else spills', () => {
    const budget = new SegmentBudget(48 * MB, 32 * MB, 8 * MB);
    const t1 = budget.launch(4 * MB);
    assert.equal(budget.hold(t1, 9 * MB), false, 'larger than a body may be');
    assert.equal(budget.heldBytes, 0);
    const big = Array.from({ length: 6 }, () => budget.launch(8 * MB));
    for (const t of big) assert.equal(budget.hold(t, 8 * MB), true);
    assert.equal(budget.heldBytes, 48 * MB);
    const t2 = budget.launch(1);
    assert.equal(budget.hold(t2, 1), false, 'the cap is full');
    budget.release(big[0]!);
    assert.equal(budget.hold(t2, 1), true);
    // A body without a length grows its share chunk by chunk, up to the size a body may be.
    const t3 = budget.launch(0);
    budget.release(big[1]!);
    let held = 0;
    while (budget.hold(t3, 64 * 1024)) held += 64 * 1024;
    assert.equal(held, 8 * MB);
  });

  it('launches against the window what is expected to be held, and large or next-in-line requests at once', () => {
    const budget = new SegmentBudget(48 * MB, 32 * MB, 8 * MB);
    let launched = 0;
    while (budget.mayLaunch(4 * MB, false)) {
      budget.launch(4 * MB);
      launched++;
    }
    assert.equal(launched, 8);
    assert.equal(budget.mayLaunch(4 * MB, true), true, 'the request the writer waits for');
    assert.equal(budget.mayLaunch(128 * MB, false), true, 'a request that will stream to disk');
  });

  it('expects a byte range, else the average so far, else BANDWIDTH × EXTINF, else nothing', () => {
    const piece = (duration: number) => ({ duration }) as Piece;
    const f = (range: { offset: number; length: number } | null, durations: number[]) =>
      ({ url: 'u', range, pieces: durations.map(piece) }) as Fetch;
    assert.equal(expectedBytes(f({ offset: 0, length: 1234 }, [2]), 99, 8e6), 1234);
    assert.equal(expectedBytes(f(null, [2]), 5000, 8e6), 5000);
    assert.equal(expectedBytes(f(null, [2, 4]), 0, 8e6), 6e6);
    assert.equal(expectedBytes(f(null, [2]), 0, null), 0);
    assert.equal(expectedBytes(f(null, [2]), 0, Number.NaN), 0);
  });
});
