/**
 * Proxies, redirects and credentials (issue 11, hostile origins 3, 8 and 9), against raw `net` origins:
 *
 * - 3: a job's own `proxy` is resolved and checked by the destination guard when it is connected to
 *   (http, https and SOCKS5 proxies alike), not only at submission; the config proxy stays trusted.
 * - 8: Cookie, Authorization and Proxy-Authorization (from the job or the config) are not sent across a
 *   redirect to another origin (scheme, host or port), nor to an origin first reached that way.
 * - 9: `user:pass@` in a job's URL is Basic auth for that URL's origin on both paths (HLS and MP4), and
 *   is never shown: API answers, SSE, webhooks, the log file, error messages and the CLI redact it.
 *
 * Made-up names (`origin.test`, `evil-proxy.test`) resolve through the guard's DNS seam only; the
 * system resolver does not know them, which is what lets a name pass at submission and resolve to a
 * forbidden address when the job runs.
 */
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { readFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hlsDownloader } from '../src/download/hls.js';
import { mp4Downloader } from '../src/download/mp4.js';
import { isGabeError } from '../src/errors.js';
import type { GuardOptions } from '../src/net/guard.js';
import { HttpClient } from '../src/net/http.js';
import { makeHlsTs, makeMp4 } from './helpers/fixtures.js';
import { runHostileJob } from './helpers/hostile-harness.js';
import { startProxy } from './helpers/proxy.js';
import { type RawServer, rawServer, requestPath } from './helpers/raw-server.js';
import { closeAllServices, startTestService, type TestService } from './helpers/service.js';
import { startSocks5 } from './helpers/socks.js';

after(() => closeAllServices());

// ---------------------------------------------------------------------------------------------
// Raw origins

interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** A raw origin answering each request head with `route(path, head)` (no body for HEAD). */
function origin(route: (pathname: string, head: string) => Reply, host = '127.0.0.1'): Promise<RawServer> {
  return rawServer((socket, head) => {
    const r = route(requestPath(head), head);
    const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body);
    const lines = [
      `HTTP/1.1 ${r.status ?? 200} X`,
      ...Object.entries(r.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      `content-length: ${body.length}`,
      '',
      '',
    ];
    socket.write(Buffer.from(lines.join('\r\n'), 'latin1'));
    if (!head.startsWith('HEAD ')) socket.write(body);
  }, host);
}

/** The named files of `dir`, in memory, for a route to answer from. */
async function preload(dir: string, names: string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const n of names) out.set(n, await readFile(path.join(dir, n)));
  return out;
}

/**
 * Where forbidden proxy names point: a listener on [::1] that counts the connections it gets and
 * closes each at once (a request that got through fails instead of hanging).
 */
async function trapServer(host = '::1') {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
type Trap = Awaited<ReturnType<typeof trapServer>>;

/** A resolver for made-up names, as in guard.test.ts. */
function fakeDns(table: Record<string, string | string[]>) {
  return async (host: string): Promise<LookupAddress[]> => {
    const entry = table[host];
    if (entry === undefined)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return [entry].flat().map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

const seams = (guard: GuardOptions) => ({
  mp4: { run: (ctx: Parameters<typeof mp4Downloader.run>[0]) => mp4Downloader.run(ctx, { guard }) },
  hls: { run: (ctx: Parameters<typeof hlsDownloader.run>[0]) => hlsDownloader.run(ctx, { guard }) },
});

async function assertForbidden(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isGabeError(err, 'FORBIDDEN_DESTINATION'), `expected FORBIDDEN_DESTINATION, got ${err}`);
    assert.match((err as Error).message, message);
    return true;
  });
}

/**
 * Runs an HLS and an MP4 job to completion on `svc` from a plain origin reached as `host`. A new
 * service's first jobs load and compile their code paths (undici for a proxy, the demuxer and muxer):
 * up to a few hundred ms of the event loop on a loaded machine, once. After this, /health measures
 * what the hostile origins cost.
 */
async function warmUp(svc: TestService, host: string): Promise<void> {
  const ts = await makeHlsTs({ seconds: 4 });
  const mp4 = await readFile((await makeMp4({ seconds: 1 })).file);
  const media = await preload(ts.dir, [ts.playlistName, ...ts.segments]);
  const server = await origin((p) =>
    p === '/v.mp4'
      ? { body: mp4 }
      : { status: media.has(p.slice(1)) ? 200 : 404, body: media.get(p.slice(1)) ?? '' },
  );
  try {
    for (const [endpoint, p] of [
      ['/download/', `/${ts.playlistName}`],
      ['/download/mp4', '/v.mp4'],
    ] as const) {
      const res = await fetch(`${svc.url}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: `http://${host}:${server.port}${p}` }),
      });
      const { job_id } = (await res.json()) as { job_id: string };
      const job = await svc.waitFor(job_id, ['COMPLETED', 'FAILED', 'CANCELLED']);
      assert.equal(job.status, 'COMPLETED', `warm-up ${endpoint}: ${job.error}`);
    }
  } finally {
    await server.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Item 3

describe('a job’s own proxy is checked by the destination guard when it is connected to (item 3)', () => {
  let svc: TestService;
  let target: RawServer;
  let trap: Trap;
  let mp4: Buffer;
  const hosts = { 'origin.test': '127.0.0.1' };

  before(async () => {
    const fixture = await makeMp4({ seconds: 1 });
    mp4 = await readFile(fixture.file);
    target = await origin((p) => (p === '/v.mp4' ? { body: mp4 } : { status: 404 }));
    trap = await trapServer();
    const guard: GuardOptions = {
      resolve: fakeDns({
        'origin.test': '127.0.0.1',
        'good-proxy.test': '127.0.0.1',
        'evil-proxy.test': '::1',
        'mixed-proxy.test': ['127.0.0.1', '::1'],
      }),
      allowAddresses: ['127.0.0.1'],
    };
    svc = await startTestService(
      { allow_private_networks: false, max_retries: 2, max_jobs_per_ip: 0 },
      { listen: true, downloaders: seams(guard) },
    );
    await warmUp(svc, 'origin.test');
    // A proxied job loads undici the first time (net/http.ts loads it on demand).
    await import('../src/net/proxy.js');
  });
  after(async () => {
    await target.close();
    await trap.close();
  });

  const job = (proxy: string) => ({ url: `http://origin.test:${target.port}/v.mp4`, proxy });

  for (const scheme of ['http', 'socks5', 'socks5h']) {
    it(`${scheme}:// proxy whose name resolves to [::1] when the job runs: FORBIDDEN_DESTINATION, nothing reaches [::1]`, async () => {
      const before = trap.connections;
      await runHostileJob(
        svc,
        job(`${scheme}://evil-proxy.test:${trap.port}`),
        {
          code: 'GABE_ERR_FORBIDDEN_DESTINATION',
          error: /::1 \(loopback\)/,
          endsWithinMs: 20_000,
          maxRssGrowthMb: 100,
        },
        '/download/mp4',
      );
      assert.equal(trap.connections - before, 0, 'a connection reached the forbidden proxy address');
    });
  }

  it('a proxy name with one forbidden answer among allowed ones is refused too', async () => {
    const before = trap.connections;
    await runHostileJob(
      svc,
      job(`http://mixed-proxy.test:${trap.port}`),
      { code: 'GABE_ERR_FORBIDDEN_DESTINATION', endsWithinMs: 20_000 },
      '/download/mp4',
    );
    assert.equal(trap.connections - before, 0);
  });

  it('an http proxy that closes every connection before answering CONNECT: the job ends with GABE_ERR_PROXY, connections bounded', async () => {
    // undici would reconnect at once, forever (thousands of connections a second); see proxy-connect.ts.
    const closer = await trapServer('127.0.0.1');
    try {
      await runHostileJob(
        svc,
        job(`http://good-proxy.test:${closer.port}`),
        { code: 'GABE_ERR_PROXY', error: /closed the connection/, endsWithinMs: 30_000, maxCpuMs: 5_000 },
        '/download/mp4',
      );
      // One connection per attempt (max_retries 2), and a few more for the parallel-range probe.
      assert.ok(closer.connections <= 12, `${closer.connections} connections`);
    } finally {
      await closer.close();
    }
  });

  it('an http proxy whose name resolves to an allowed address is used: the job completes through it', async () => {
    const proxy = await startProxy({ hosts });
    try {
      const port = new URL(proxy.url).port;
      await runHostileJob(
        svc,
        job(`http://good-proxy.test:${port}`),
        { endsWithinMs: 30_000 },
        '/download/mp4',
      );
      assert.deepEqual(proxy.targets, [`origin.test:${target.port}`]);
    } finally {
      await proxy.close();
    }
  });

  it('socks5:// resolves the target with the guard and sends the checked address; socks5h:// sends the name', async () => {
    const socks = await startSocks5({ hosts });
    try {
      const port = new URL(socks.url).port;
      await runHostileJob(
        svc,
        job(`socks5://good-proxy.test:${port}`),
        { endsWithinMs: 30_000 },
        '/download/mp4',
      );
      assert.ok(socks.targets.length >= 1);
      assert.ok(
        socks.targets.every((t) => t === `127.0.0.1:${target.port}`),
        socks.targets.join(),
      );
      socks.targets.length = 0;
      await runHostileJob(
        svc,
        job(`socks5h://good-proxy.test:${port}`),
        { endsWithinMs: 30_000 },
        '/download/mp4',
      );
      assert.ok(socks.targets.length >= 1);
      assert.ok(
        socks.targets.every((t) => t === `origin.test:${target.port}`),
        socks.targets.join(),
      );
    } finally {
      await socks.close();
    }
  });
});

describe('HttpClient: the proxy connection is guarded unless the proxy is the operator’s (item 3)', () => {
  let target: RawServer;
  let trap: Trap;
  before(async () => {
    // The target on 127.0.0.2 (allowed below); the proxies on 127.0.0.1 and [::1] (forbidden).
    target = await origin(() => ({ body: 'target' }), '127.0.0.2');
    trap = await trapServer();
  });
  after(async () => {
    await target.close();
    await trap.close();
  });

  const guard: GuardOptions = {
    resolve: fakeDns({ 'origin.test': '127.0.0.2', 'rebinding-origin.test': '127.0.0.2' }),
    allowAddresses: ['127.0.0.2'],
  };
  const client = (proxy: string, proxyFrom?: 'config' | 'request') =>
    new HttpClient({ timeoutMs: 2000, allowPrivateNetworks: false, guard, proxy, proxyFrom });

  for (const proxy of ['http://[::1]', 'https://[::1]', 'socks5://[::1]', 'socks5h://[::1]']) {
    it(`refuses a request proxy at ${proxy} (an IP literal) without connecting to it`, async () => {
      const before = trap.connections;
      const http = client(`${proxy}:${trap.port}`);
      try {
        await assertForbidden(http.get(`http://origin.test:${target.port}/`), /::1/);
      } finally {
        await http.destroy();
      }
      assert.equal(trap.connections - before, 0);
    });
  }

  it('connects to the config proxy wherever it is (trusted), and refuses the same proxy named by a request', async () => {
    const proxy = await startProxy({ hosts: { 'origin.test': '127.0.0.2' } });
    try {
      const trusted = client(proxy.url, 'config');
      try {
        const { data } = await trusted.getBuffer(`http://origin.test:${target.port}/`);
        assert.equal(data.toString(), 'target');
      } finally {
        await trusted.destroy();
      }
      assert.equal(proxy.targets.length, 1);
      const untrusted = client(proxy.url, 'request');
      try {
        await assertForbidden(
          untrusted.get(`http://origin.test:${target.port}/`),
          /proxy 127\.0\.0\.1.*loopback/,
        );
      } finally {
        await untrusted.destroy();
      }
      assert.equal(proxy.targets.length, 1, 'the refused request reached the proxy');
    } finally {
      await proxy.close();
    }
  });

  it('a proxy that closes every connection before answering CONNECT fails the request (GABE_ERR_PROXY) instead of reconnecting without end', async () => {
    const closer = await trapServer('127.0.0.1');
    const http = client(`http://127.0.0.1:${closer.port}`, 'config');
    try {
      const outcome = await Promise.race([
        http.get(`http://origin.test:${target.port}/`).then(
          () => 'answered',
          (err: unknown) => err,
        ),
        new Promise((resolve) => setTimeout(() => resolve('still pending after 10 s'), 10_000)),
      ]);
      assert.ok(isGabeError(outcome, 'PROXY'), `${outcome}`);
      assert.equal(outcome.retryable, true);
    } finally {
      await http.destroy();
      await closer.close();
    }
    assert.equal(closer.connections, 1);
  });

  it('socks5:// checks the target address it connects to: a name that rebinds after the first check is refused', async () => {
    let calls = 0;
    const rebinding: GuardOptions = {
      resolve: async (host) => {
        if (host === 'good-proxy.test') return [{ address: '127.0.0.1', family: 4 }];
        calls++;
        return [{ address: calls === 1 ? '127.0.0.2' : '169.254.169.254', family: 4 }];
      },
      allowAddresses: ['127.0.0.1', '127.0.0.2'],
    };
    const socks = await startSocks5();
    const http = new HttpClient({
      timeoutMs: 2000,
      allowPrivateNetworks: false,
      guard: rebinding,
      proxy: `socks5://good-proxy.test:${new URL(socks.url).port}`,
    });
    try {
      await assertForbidden(http.get(`http://rebinding-origin.test:${target.port}/`), /169\.254\.169\.254/);
    } finally {
      await http.destroy();
      await socks.close();
    }
    assert.deepEqual(socks.targets, []);
  });
});
