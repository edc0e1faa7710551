/**
 * The shared fixture cache (helpers/fixture-cache.ts) that every e2e process of a run uses at once:
 * real processes racing to store the same fixture, real files in os.tmpdir(). The builds here write a
 * file naming the process that made it, so each test can tell whose copy a process was given.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const CACHE = fileURLToPath(new URL('../helpers/fixture-cache.ts', import.meta.url));
const ROOT = path.join(os.tmpdir(), 'gabe-test-fixtures');

/**
 * A process that asks the cache for fixture `key`: its build (when it runs) writes `data.txt` holding
 * its pid and points `outside` at the folder given; with a `barrier` folder, it waits there until two
 * builds have started, so that two processes race for real. It prints what it was given.
 */
const CHILD = `
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sharedFixture } from ${JSON.stringify(CACHE)};
const [key, build, outside, barrier] = process.argv.slice(1);
let built = false;
const fx = await sharedFixture(pathToFileURL(${JSON.stringify(CACHE)}).href, key, [], async () => {
  if (build === 'never') throw new Error('built although the entry exists');
  built = true;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gabe-cache-test-'));
  writeFileSync(path.join(dir, 'data.txt'), String(process.pid));
  if (barrier) {
    writeFileSync(path.join(barrier, String(process.pid)), '');
    while (readdirSync(barrier).length < 2) await new Promise((r) => setTimeout(r, 10));
  }
  return { dir, file: path.join(dir, 'data.txt'), builtBy: process.pid, key: Buffer.from('k1'), outside };
});
console.log(JSON.stringify({ ...fx, key: fx.key.toString(), data: readFileSync(fx.file, 'utf8'), built }));
`;

interface Given {
  dir: string;
  file: string;
  builtBy: number;
  key: string;
  data: string;
  built: boolean;
}

async function ask(
  key: string,
  build: 'build' | 'never',
  outside = os.tmpdir(),
  barrier = '',
): Promise<Given> {
  const args = ['--import', 'tsx', '--input-type=module', '-e', CHILD, key, build, outside, barrier];
  const { stdout } = await promisify(execFile)(process.execPath, args);
  return JSON.parse(stdout) as Given;
}

const staging = (entry: string) => readdirSync(ROOT).filter((n) => n.startsWith(`.${path.basename(entry)}-`));

describe('the shared fixture cache', () => {
  it('gives two processes that build the same fixture at once one whole entry, and the next process it without a build', async () => {
    const key = `race:${randomUUID()}`;
    const barrier = mkdtempSync(path.join(os.tmpdir(), 'gabe-cache-barrier-'));
    const [a, b] = await Promise.all([
      ask(key, 'build', os.tmpdir(), barrier),
      ask(key, 'build', os.tmpdir(), barrier),
    ]);
    assert.ok(a.built && b.built, 'both built it');
    assert.equal(a.dir, b.dir, 'one entry');
    assert.equal(path.dirname(a.dir), ROOT);
    assert.equal(a.builtBy, b.builtBy, 'both given the copy that was stored');
    assert.equal(a.data, String(a.builtBy), 'the stored files are the ones its description names');
    assert.equal(a.file, path.join(a.dir, 'data.txt'), 'paths moved with the folder');
    assert.equal(a.key, 'k1', 'Buffers come back as Buffers');
    assert.deepEqual(staging(a.dir), [], 'the losing copy is gone');
    const c = await ask(key, 'never');
    assert.deepEqual(c, { ...a, built: false });
    rmSync(barrier, { recursive: true });
    rmSync(a.dir, { recursive: true });
  });

  it('builds again an entry that names a folder outside it which is gone', async () => {
    const key = `dangling:${randomUUID()}`;
    const outside = mkdtempSync(path.join(os.tmpdir(), 'gabe-cache-outside-'));
    const first = await ask(key, 'build', outside);
    assert.equal((await ask(key, 'never', outside)).builtBy, first.builtBy);
    rmSync(outside, { recursive: true });
    const again = await ask(key, 'build', outside);
    assert.notEqual(again.builtBy, first.builtBy, 'built again');
    assert.equal(again.dir, first.dir, 'in the same entry');
    assert.equal(again.data, String(again.builtBy));
    assert.ok(existsSync(path.join(again.dir, 'fixture.json')));
    assert.deepEqual(staging(again.dir), []);
    rmSync(again.dir, { recursive: true });
  });
});
