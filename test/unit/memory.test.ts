/**
 * keepHeapSmall (src/service/heap.ts) in a fresh process each, as the CLI calls it: V8 takes both flags
 * without a warning, and with them its new space stays at its starting size under an allocation-heavy
 * load, where without them it grows.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

function newSpaceAfterLoad(apply: boolean): { applied: boolean; size: number } {
  const script = `
    import { keepHeapSmall } from './src/service/heap.ts';
    import { getHeapSpaceStatistics } from 'node:v8';
    const applied = ${apply} ? keepHeapSmall() : false;
    let keep = [];
    // Short-lived objects at a high rate, some surviving a while: what makes V8 grow the space.
    for (let i = 0; i < 3e6; i++) {
      keep.push({ i, s: 'segment ' + i });
      if (keep.length > 20000) keep = [];
    }
    const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    console.log(JSON.stringify({ applied, size: space.space_size }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'no V8 warning about the flag');
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('V8 heap settings', () => {
  it('stays at its starting size with the growth factor set, where V8 would grow it', () => {
    const grown = newSpaceAfterLoad(false);
    const kept = newSpaceAfterLoad(true);
    assert.equal(kept.applied, true, `V8 ${process.versions.v8} is one the setting is known for`);
    assert.ok(grown.size >= 4 * kept.size, `new space ${grown.size} without, ${kept.size} with`);
  });
});
