/**
 * The `gabe` bin as shipped: dist/cli.js is an esbuild bundle (scripts/build.mjs), not the sources the
 * other tests run through tsx, so a bundling mistake (a package that finds files next to itself, a
 * dynamic require) would only show here. Built fresh, then used as a user would.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/cli.js';
import { type Mp4Fixture, makeMp4 } from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { tempDir } from '../helpers/tmp.js';

const BIN = path.join(ROOT, 'dist/cli.js');
const run = (args: string[]) => promisify(execFile)(process.execPath, args);

describe('the built bin (dist/cli.js)', () => {
  let origin: Origin;
  let mp4: Mp4Fixture;
  before(async () => {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'pipe' });
    mp4 = await makeMp4({ seconds: 2 });
    origin = await startOrigin();
    origin.addFile('/v.mp4', mp4.file);
  });
  after(() => origin.close());

  it('prints its version and downloads a file with gabe download', async () => {
    const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
    assert.equal((await run([BIN, '--version'])).stdout.trim(), version);
    const out = path.join(tempDir(), 'v.mp4');
    // Asynchronously: the origin answering it lives in this process.
    await run([BIN, 'download', `${origin.url}/v.mp4`, '-o', out]);
    assert.equal(mediaIdentity(out), mediaIdentity(mp4.file));
  });

  it('serves the API, its docs, the web page and health, and writes the log file', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ port: 0, allow_private_networks: true }));
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`gabe serve exited with ${code}: ${out}`)));
      });
      for (const [p, type] of [
        ['/health', /json/],
        ['/docs/', /html/],
        ['/openapi.json', /json/],
        ['/', /html/],
      ] as const) {
        const res = await fetch(`${url}${p}`);
        assert.equal(res.status, 200, p);
        assert.match(res.headers.get('content-type') ?? '', type, p);
        await res.arrayBuffer();
      }
      const res = await fetch(`${url}/download/mp4`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: `${origin.url}/v.mp4` }),
      });
      const job = (await res.json()) as { job_id: string };
      for (let i = 0; i < 200; i++) {
        const j = (await (await fetch(`${url}/job/${job.job_id}`)).json()) as { status: string };
        if (j.status === 'COMPLETED') break;
        assert.ok(['PENDING', 'PROCESSING'].includes(j.status), j.status);
        await new Promise((r) => setTimeout(r, 50));
      }
      const log = readFileSync(path.join(dir, 'logs/video_downloader.log'), 'utf8');
      assert.match(log, new RegExp(`"job_id":"${job.job_id}".*job completed`));
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
