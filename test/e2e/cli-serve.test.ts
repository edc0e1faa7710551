import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { gabe, waitForOutput } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

function configIn(dir: string, value: Record<string, unknown>): string {
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(value));
  return file;
}

describe('gabe serve', () => {
  it('prints the URL and /docs, serves /health, and exits 0 on SIGTERM', async () => {
    const dir = tempDir();
    const g = gabe(['serve', '--config', configIn(dir, {}), '--port', '0']);
    const [, url] = await waitForOutput(g.output, /listening on (http:\/\/\S+)/);
    assert.match(g.output(), /API docs: http:\/\/\S+\/docs/);
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    g.child.kill('SIGTERM');
    assert.equal(await g.exit, 0);
  });

  it('reads GABE_CONFIG and exits 0 on SIGINT', async () => {
    const dir = tempDir();
    const g = gabe(['serve', '--port', '0'], { GABE_CONFIG: configIn(dir, { output_path: 'out' }) });
    const [, url] = await waitForOutput(g.output, /listening on (http:\/\/\S+)/);
    const h = (await (await fetch(`${url}/health`)).json()) as { disk: { path: string } };
    assert.equal(h.disk.path, path.join(dir, 'out'));
    g.child.kill('SIGINT');
    assert.equal(await g.exit, 0);
  });

  it('fails at start with a clear message when ffmpeg cannot be found', async () => {
    const dir = tempDir();
    const g = gabe([
      'serve',
      '--config',
      configIn(dir, { ffmpeg_path: path.join(dir, 'no-ffmpeg') }),
      '--port',
      '0',
    ]);
    assert.equal(await g.exit, 1);
    assert.match(g.output(), /ffmpeg not usable at .*no-ffmpeg/);
    assert.match(g.output(), /apt-get install ffmpeg/);
    assert.match(g.output(), /GABE_ERR_FFMPEG_MISSING/);
  });

  it('fails at start naming the bad config key', async () => {
    const dir = tempDir();
    const g = gabe(['serve', '--config', configIn(dir, { max_queue_size: -1 })]);
    assert.equal(await g.exit, 1);
    assert.match(g.output(), /"max_queue_size"/);
  });

  it('fails at start with a clear message when the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const g = gabe(['serve', '--config', configIn(tempDir(), {}), '--port', String(port)]);
      assert.equal(await g.exit, 1);
      assert.match(g.output(), new RegExp(`port ${port} .* already in use`));
    } finally {
      blocker.close();
    }
  });
});
