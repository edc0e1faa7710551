/** Where the parts of a progressive multipart upload lie (storage/part-plan.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { finalParts, fullPart, headPartEnd, lastFullPart, MAX_PARTS } from '../../src/storage/part-plan.js';

const MiB = 1024 * 1024;
const P = 8 * MiB;

describe('progressive upload part plan', () => {
  it('makes part 1 one part long, or the whole rewritten head when that is longer', () => {
    assert.equal(headPartEnd(200 * 1024, P), P);
    assert.equal(headPartEnd(21 * MiB, P), 21 * MiB);
  });

  it('counts only parts the file already holds in full as ready to send', () => {
    assert.equal(lastFullPart(0, P, P), 1);
    assert.equal(lastFullPart(2 * P - 1, P, P), 1);
    assert.equal(lastFullPart(2 * P, P, P), 2);
    assert.equal(lastFullPart(3 * P + 5, P, P), 3);
    assert.deepEqual(fullPart(3, P, P), { part: 3, start: 2 * P, end: 3 * P });
    assert.deepEqual(fullPart(2, 21 * MiB, P), { part: 2, start: 21 * MiB, end: 21 * MiB + P });
  });

  it('cuts the finished file into the head, full parts and a shorter last part that ends at its size', () => {
    const size = 40 * MiB + 123;
    const parts = finalParts(size, P, P)!;
    assert.deepEqual(
      parts.map((p) => [p.part, p.start, p.end]),
      [
        [1, 0, P],
        [2, P, 2 * P],
        [3, 2 * P, 3 * P],
        [4, 3 * P, 4 * P],
        [5, 4 * P, 5 * P],
        [6, 5 * P, size],
      ],
    );
    // Contiguous and covering every byte once.
    for (let i = 1; i < parts.length; i++) assert.equal(parts[i]!.start, parts[i - 1]!.end);
  });

  it('has no plan for a file within its head part, or one that would pass S3 limit of 10,000 parts', () => {
    assert.equal(finalParts(P, P, P), null);
    assert.equal(finalParts(P + 1, P, P)?.length, 2);
    assert.equal(finalParts(P + (MAX_PARTS - 1) * P, P, P)?.length, MAX_PARTS);
    assert.equal(finalParts(P + (MAX_PARTS - 1) * P + 1, P, P), null);
    assert.equal(lastFullPart(P * (MAX_PARTS + 5), P, P), MAX_PARTS);
  });
});
