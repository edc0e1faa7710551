import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromHash, progressFields } from '../../src/jobs/redis-job-hash.js';
import { luaTransitionTable } from '../../src/jobs/redis-scripts.js';
import { canTransition, JobStatus } from '../../src/jobs/types.js';

describe('Redis job hash', () => {
  it('reads absent nullable fields as null and numbers back to the same doubles', () => {
    const job = fromHash([
      'seq',
      '42',
      'id',
      'x',
      'type',
      'hls',
      'status',
      'PENDING',
      'request',
      '{"url":"u","subtitle_languages":[]}',
      'client_ip',
      '::1',
      'video_name',
      'v',
      'created_at',
      't',
      'updated_at',
      't',
      'progress',
      '0.30000000000000004',
      'total_segments',
      '0',
      'downloaded_segments',
      '0',
      'downloaded_bytes',
      '9007199254740991',
      'speed_bps',
      '0',
      'attempts',
      '1',
      'eta_seconds',
      '1e-7',
    ]);
    assert.equal(job.seq, 42);
    assert.equal(job.progress, 0.1 + 0.2);
    assert.equal(job.downloaded_bytes, 2 ** 53 - 1);
    assert.equal(job.eta_seconds, 1e-7);
    assert.deepEqual(job.request, { url: 'u', subtitle_languages: [] });
    for (const f of [
      'total_bytes',
      'recorded_seconds',
      'started_at',
      'completed_at',
      'error',
      'error_code',
      'owner',
      'result',
    ] as const)
      assert.equal(job[f], null, f);
  });

  it('splits a progress snapshot into fields to set and nulls to delete', () => {
    const { set, unset } = progressFields({
      progress: 1.5,
      total_segments: 2,
      downloaded_segments: 1,
      downloaded_bytes: 10,
      total_bytes: null,
      speed_bps: 0.25,
      eta_seconds: null,
      recorded_seconds: 3,
    });
    assert.deepEqual(set, [
      'progress',
      '1.5',
      'total_segments',
      '2',
      'downloaded_segments',
      '1',
      'downloaded_bytes',
      '10',
      'speed_bps',
      '0.25',
      'recorded_seconds',
      '3',
    ]);
    assert.deepEqual(unset, ['total_bytes', 'eta_seconds']);
  });

  it("spells types.ts's transition table in Lua, pair for pair", () => {
    const lua = luaTransitionTable();
    for (const from of Object.values(JobStatus)) {
      const row = new RegExp(`${from} = \\{ ([^}]*) \\}`).exec(lua)?.[1] ?? '';
      const listed = row ? row.split(', ').map((s) => s.replace(' = true', '')) : [];
      assert.deepEqual(
        listed,
        Object.values(JobStatus).filter((to) => canTransition(from, to)),
        from,
      );
    }
  });
});
