import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { mayStillRun } from '../../src/jobs/temp-owner.js';

describe('whether an earlier run of a job may still be writing its temp folder', () => {
  const here = hostname();

  it('says no for this very process: its earlier run has stopped before a new one begins', () => {
    assert.equal(mayStillRun({ host: here, pid: process.pid, attempt: 1 }), false);
  });

  it('says no for a process of this host that has exited (a crash, kill -9): its files can be resumed', () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    assert.ok(gone);
    assert.equal(mayStillRun({ host: here, pid: gone, attempt: 1 }), false);
  });

  it('says yes for a live process of this host, and for any process of another host', () => {
    assert.equal(mayStillRun({ host: here, pid: process.ppid, attempt: 1 }), true);
    assert.equal(mayStillRun({ host: `${here}-elsewhere`, pid: process.pid, attempt: 1 }), true);
  });
});
