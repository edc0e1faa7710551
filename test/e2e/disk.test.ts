import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Mp4Fixture, makeMp4 } from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

/** A real small file system, so ENOSPC comes from the kernel, not from a mock. Needs root (CI is). */
function mountSmallDisk(megabytes: number): string | null {
  const dir = path.join(tempDir('gabe-disk-'), 'disk');
  mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    return null;
  }
}

const disk = mountSmallDisk(4);

describe('disk space', { skip: disk ? false : 'mounting a tmpfs needs root' }, () => {
  let origin: Origin;
  let big: Mp4Fixture;
  let small: Mp4Fixture;
  let svc: TestService;

  before(async () => {
    big = await makeMp4({ seconds: 12, kbps: 4000, width: 640, height: 360 });
    small = await makeMp4({ seconds: 2 });
    assert.ok(big.size > 5 * 1024 * 1024, `fixture is ${big.size} bytes`);
    origin = await startOrigin();
    origin.addFile('/big.mp4', big.file);
    origin.addFile('/small.mp4', small.file);
    svc = await startTestService({
      temp_path: path.join(disk!, 'temp'),
      output_path: path.join(disk!, 'out'),
      max_jobs_per_ip: 0,
      max_concurrent_downloads: 2,
    });
  });
  after(async () => {
    await closeAllServices();
    await origin.close();
    execFileSync('umount', [disk!]);
  });

  const submit = async (url: string) =>
    (
      await svc.app.inject({
        method: 'POST',
        url: '/download/mp4',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ url }),
      })
    ).json().job_id as string;

  it('refuses a download of known size that cannot fit, before fetching it', async () => {
    const job = await svc.waitFor(await submit(`${origin.url}/big.mp4`), ['COMPLETED', 'FAILED']);
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_DISK_FULL');
    assert.match(job.error ?? '', /not enough free space .* MB free, .* MB needed/);
    assert.ok(job.downloaded_bytes < big.size / 2);
  });

  it('fails a download that fills the disk with GABE_ERR_DISK_FULL, removes its files, and other jobs continue', async () => {
    origin.addFault({ match: '/big.mp4', chunked: true, throttleBytesPerSec: 4_000_000 });
    const bigId = await submit(`${origin.url}/big.mp4`);
    const smallId = await submit(`${origin.url}/small.mp4`);
    const failed = await svc.waitFor(bigId, ['COMPLETED', 'FAILED']);
    assert.equal(failed.status, 'FAILED');
    assert.equal(failed.error_code, 'GABE_ERR_DISK_FULL');
    assert.deepEqual(readdirSync(svc.config.temp_path), [], 'its temp files are gone');
    const ok = await svc.waitFor(smallId, ['COMPLETED', 'FAILED']);
    assert.equal(ok.status, 'COMPLETED', ok.error ?? '');
    assert.equal(mediaIdentity(ok.result!.output_path), mediaIdentity(small.file));
    const again = await svc.waitFor(await submit(`${origin.url}/small.mp4`), ['COMPLETED', 'FAILED']);
    assert.equal(again.status, 'COMPLETED', 'the service still works after ENOSPC');
  });

  it('reports the nearly full disk on /health', async () => {
    const res = await svc.app.inject({ method: 'GET', url: '/health' });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().disk.ok, false);
    assert.equal(res.json().ffmpeg.ok, true);
  });
});
