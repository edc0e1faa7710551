/** BufferPool (src/pipeline/buffer-pool.ts): reuse, views that find their buffer, and a bound in bytes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from '../../src/pipeline/buffer-pool.js';

describe('segment buffer pool', () => {
  it('hands a released buffer out again for a body of about the same size, also through a view', () => {
    const pool = new BufferPool();
    const a = pool.take(400_000);
    assert.equal(a.length, 400_000);
    // A disguise header cut off: the view still finds its buffer.
    pool.release([a.subarray(67)]);
    const b = pool.take(390_000);
    assert.equal(b.buffer, a.buffer);
    // Far smaller: not worth a buffer four times its size.
    pool.release([b]);
    assert.notEqual(pool.take(50_000).buffer, a.buffer);
  });

  it('leaves alone buffers it did not hand out, and takes each back once', () => {
    const pool = new BufferPool();
    pool.release([Buffer.alloc(1000)]);
    assert.equal(pool.idleBytes, 0);
    const a = pool.take(100_000);
    pool.release([a, a]);
    assert.equal(pool.idleBytes, 128 * 1024);
  });

  it('keeps at most its byte budget free, dropping the oldest buffers first', () => {
    const pool = new BufferPool(1024 * 1024);
    const small = Array.from({ length: 8 }, () => pool.take(128 * 1024));
    pool.release(small);
    assert.equal(pool.idleBytes, 1024 * 1024);
    // Segments grew: the big buffer pushes out the oldest small ones instead of growing the pool.
    const big = pool.take(512 * 1024);
    pool.release([big]);
    assert.equal(pool.idleBytes, 1024 * 1024);
    assert.equal(pool.take(500 * 1024).buffer, big.buffer);
  });
});
