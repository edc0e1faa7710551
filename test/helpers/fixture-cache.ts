/**
 * A content-addressed cache of ffmpeg-made fixtures, shared by every test process of a run and by the
 * runs after it: `os.tmpdir()/gabe-test-fixtures/<sha256>/`, where the hash covers the recipe (the
 * source of the module that makes the fixture), the fixture's kind and options, and the `-version`
 * output of ffmpeg and ffprobe. The e2e files run as separate processes, so a per-process cache alone
 * encodes the same streams once per file; a change to the recipe or the binaries makes a new entry.
 *
 * Safe under concurrent writers: a fixture is built in a private folder, described in `fixture.json`,
 * then renamed into place in one step; the loser of a race drops its copy and uses the winner's.
 * Entries are read-only by contract (as the per-process fixtures are). GABE_FIXTURE_CACHE=0 turns the
 * cache off (every process encodes its own).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = path.join(os.tmpdir(), 'gabe-test-fixtures');
const DESCRIPTION = 'fixture.json';
/** Stands for the entry's folder in `fixture.json`, so an entry can be built elsewhere and renamed. */
const HERE = '\u0000fixture-dir';

const versions = new Map<string, Promise<string>>();
function versionOf(bin: string): Promise<string> {
  let v = versions.get(bin);
  if (!v) {
    v = promisify(execFile)(bin, ['-version']).then(({ stdout }) => stdout);
    versions.set(bin, v);
  }
  return v;
}

async function entryName(recipe: string[], key: string, tools: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const url of recipe) hash.update(readFileSync(fileURLToPath(url)));
  hash.update(`\u0000${key}`);
  for (const bin of tools) hash.update(`\u0000${bin}\u0000${await versionOf(bin)}`);
  return hash.digest('hex').slice(0, 32);
}

/** `value` with every path inside `dir` written relative to HERE; Buffers as their JSON form. */
function serialize(value: unknown, dir: string): string {
  return JSON.stringify(value, (_k, v) =>
    typeof v === 'string' && (v === dir || v.startsWith(`${dir}${path.sep}`))
      ? HERE + v.slice(dir.length)
      : v,
  );
}

function revive<T>(text: string, dir: string): T {
  return JSON.parse(text, (_k, v) => {
    if (typeof v === 'string' && v.startsWith(HERE)) return dir + v.slice(HERE.length);
    if (v && v.type === 'Buffer' && Array.isArray(v.data)) return Buffer.from(v.data);
    return v;
  }) as T;
}

/** Every absolute path the description names still exists (another entry it points into may not). */
function complete(value: unknown): boolean {
  if (typeof value === 'string') return !path.isAbsolute(value) || existsSync(value);
  if (Buffer.isBuffer(value) || value === null || typeof value !== 'object') return true;
  return Object.values(value).every(complete);
}

async function load<T>(entry: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(path.join(entry, DESCRIPTION), 'utf8');
  } catch {
    return null;
  }
  const value = revive<T>(text, entry);
  return complete(value) ? value : null;
}

/**
 * The fixture `build` makes, from the shared cache when an entry exists. `build` must put every file
 * in one fresh folder, returned as `dir`, that this moves into the cache; `recipe` is the URL (or
 * URLs) of the modules whose code makes the fixture; `tools` the binaries it runs.
 */
export async function sharedFixture<T extends { dir: string }>(
  recipe: string | string[],
  key: string,
  tools: string[],
  build: () => Promise<T>,
): Promise<T> {
  if (process.env.GABE_FIXTURE_CACHE === '0') return build();
  const entry = path.join(ROOT, await entryName([recipe].flat(), key, tools));
  const found = await load<T>(entry);
  if (found) return found;
  const built = await build();
  await mkdir(ROOT, { recursive: true });
  const staging = path.join(
    ROOT,
    `.${path.basename(entry)}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  renameSync(built.dir, staging);
  await writeFile(path.join(staging, DESCRIPTION), serialize(built, built.dir));
  try {
    renameSync(staging, entry);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    // Another process stored the same fixture first, or an entry is left incomplete: keep one whole.
    const theirs = await load<T>(entry);
    if (theirs) {
      rmSync(staging, { recursive: true, force: true });
      return theirs;
    }
    rmSync(entry, { recursive: true, force: true });
    try {
      renameSync(staging, entry);
    } catch {
      return revive<T>(serialize(built, built.dir), staging);
    }
  }
  return revive<T>(serialize(built, built.dir), entry);
}
