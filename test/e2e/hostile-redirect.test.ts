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
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HttpClient } from '../../src/net/client.js';
import type { GuardOptions } from '../../src/net/guard.js';
import { hlsDownloader } from '../../src/pipeline/hls/job.js';
import { mp4Downloader } from '../../src/pipeline/mp4/job.js';
import { isGabeError } from '../../src/service/errors.js';
import { LOG_FILE_NAME } from '../../src/service/log.js';
import { gabe } from '../helpers/cli.js';
import { makeHlsAes, makeHlsTs, makeMp4 } from '../helpers/fixtures.js';
import { runHostileJob } from '../helpers/hostile-harness.js';
import { startProxy } from '../helpers/proxy.js';
import { type RawServer, rawServer, requestPath } from '../helpers/raw-server.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { startSocks5 } from '../helpers/socks.js';

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

/** Every request head a raw origin received. */
const heads = (s: RawServer) => s.conns.flatMap((c) => c.requests);

/** A header of a request head, or undefined. */
function header(head: string, name: string): string | undefined {
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (line.slice(0, colon).trim().toLowerCase() === name) return line.slice(colon + 1).trim();
  }
  return undefined;
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

let jobService: Promise<TestService> | null = null;
/**
 * The service of the item 8 and 9 jobs, warmed up once (allow_private_networks on, as the origins and
 * the webhook receiver are on loopback). Config headers: a credential and an ordinary one.
 */
function itemJobsService(): Promise<TestService> {
  jobService ??= (async () => {
    const svc = await startTestService(
      { headers: { Cookie: 'config-cookie=1', 'X-Config': 'kept' }, max_jobs_per_ip: 0 },
      { listen: true },
    );
    await warmUp(svc, '127.0.0.1');
    return svc;
  })();
  return jobService;
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
    // A proxied job loads undici the first time (net/client.ts loads it on demand).
    await import('../../src/net/transports/proxy-transport.js');
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

// ---------------------------------------------------------------------------------------------
// Item 8

describe('HttpClient: credentials are not sent across origins on redirects (item 8)', () => {
  let a: RawServer;
  let b: RawServer;
  const credentials = {
    cookie: 'session=abc',
    authorization: 'Bearer job-token',
    'proxy-authorization': 'Basic cHJveHk6cHc=',
  };
  const others = { referer: 'https://ref.example/', 'x-trace': 'kept' };

  before(async () => {
    b = await origin((p) => {
      if (p === '/back') return { status: 302, headers: { location: `http://127.0.0.1:${a.port}/final` } };
      return { body: 'b' };
    });
    a = await origin((p) => {
      if (p === '/same') return { status: 301, headers: { location: '/final' } };
      if (p === '/port') return { status: 302, headers: { location: `http://127.0.0.1:${b.port}/final` } };
      if (p === '/host') return { status: 307, headers: { location: `http://localhost:${a.port}/final` } };
      if (p === '/away-and-back')
        return { status: 302, headers: { location: `http://127.0.0.1:${b.port}/back` } };
      if (p === '/creds-in-location')
        return { status: 302, headers: { location: `http://u:location-pw@127.0.0.1:${b.port}/final` } };
      return { body: 'a' };
    });
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  async function fetchVia(url: string, headers: Record<string, string> = { ...credentials, ...others }) {
    const http = new HttpClient({ timeoutMs: 2000, allowPrivateNetworks: true, headers });
    const seenA = heads(a).length;
    const seenB = heads(b).length;
    try {
      await http.getBuffer(url);
    } finally {
      await http.destroy();
    }
    return { a: heads(a).slice(seenA), b: heads(b).slice(seenB) };
  }

  const assertNoCredentials = (head: string) => {
    for (const name of Object.keys(credentials))
      assert.equal(header(head, name), undefined, `${name} in ${head}`);
  };
  const assertOthersKept = (head: string) => {
    assert.equal(header(head, 'referer'), others.referer);
    assert.equal(header(head, 'x-trace'), 'kept');
    assert.match(header(head, 'user-agent') ?? '', /Gabe/);
  };

  it('a same-origin redirect keeps Cookie, Authorization and Proxy-Authorization', async () => {
    const seen = await fetchVia(`http://127.0.0.1:${a.port}/same`);
    assert.equal(seen.a.length, 2);
    for (const head of seen.a) {
      assert.equal(header(head, 'cookie'), credentials.cookie);
      assert.equal(header(head, 'authorization'), credentials.authorization);
      assert.equal(header(head, 'proxy-authorization'), credentials['proxy-authorization']);
    }
  });

  it('a redirect to another port drops them and keeps the other headers', async () => {
    const seen = await fetchVia(`http://127.0.0.1:${a.port}/port`);
    assert.equal(header(seen.a[0]!, 'cookie'), credentials.cookie);
    assert.equal(seen.b.length, 1);
    assertNoCredentials(seen.b[0]!);
    assertOthersKept(seen.b[0]!);
  });

  it('a redirect to another host on the same port drops them', async () => {
    const seen = await fetchVia(`http://127.0.0.1:${a.port}/host`);
    assert.equal(seen.a.length, 2);
    assert.equal(header(seen.a[1]!, 'host'), `localhost:${a.port}`);
    assertNoCredentials(seen.a[1]!);
    assertOthersKept(seen.a[1]!);
  });

  it('a redirect back to the first origin after a hop away does not send them again', async () => {
    const seen = await fetchVia(`http://127.0.0.1:${a.port}/away-and-back`);
    assert.equal(seen.b.length, 1);
    assertNoCredentials(seen.b[0]!);
    assert.equal(seen.a.length, 2);
    assert.equal(requestPath(seen.a[1]!), '/final');
    assertNoCredentials(seen.a[1]!);
    assertOthersKept(seen.a[1]!);
  });

  it('user:pass@ of the URL is Basic auth for its origin only; credentials in a Location are not used', async () => {
    const seen = await fetchVia(`http://alice:pa%3Ass@127.0.0.1:${a.port}/port`, others);
    assert.equal(
      header(seen.a[0]!, 'authorization'),
      `Basic ${Buffer.from('alice:pa:ss').toString('base64')}`,
    );
    assertNoCredentials(seen.b[0]!);
    const located = await fetchVia(`http://alice:pw@127.0.0.1:${a.port}/creds-in-location`, others);
    assertNoCredentials(located.b[0]!);
  });

  it('an origin first reached through a cross-origin redirect gets no credentials on later requests either', async () => {
    // An MP4's ranges and a redirected playlist's segments are fetched from the redirect's target
    // directly: without this, a redirect would hand the target the credentials one request later.
    const http = new HttpClient({
      timeoutMs: 2000,
      allowPrivateNetworks: true,
      headers: { ...credentials, ...others },
    });
    try {
      const first = await http.getBuffer(`http://127.0.0.1:${a.port}/port`);
      const seenB = heads(b).length;
      await http.getBuffer(first.res.url);
      const later = heads(b).slice(seenB);
      assert.equal(later.length, 1);
      assertNoCredentials(later[0]!);
      const seenA = heads(a).length;
      await http.getBuffer(`http://127.0.0.1:${a.port}/final`);
      assert.equal(header(heads(a).slice(seenA)[0]!, 'cookie'), credentials.cookie);
    } finally {
      await http.destroy();
    }
  });
});

describe('jobs: a redirect to another origin does not carry the job’s or the config’s credentials (item 8)', () => {
  let svc: TestService;
  let a: RawServer;
  let b: RawServer;

  before(async () => {
    const ts = await makeHlsTs({ seconds: 4 });
    const mp4 = await readFile((await makeMp4({ seconds: 1 })).file);
    const segs = await preload(ts.dir, ts.segments);
    b = await origin((p) => {
      if (p === '/media.m3u8') {
        // Segment 0 on the first origin (absolute), the rest on this one (relative).
        const lines = ['#EXTM3U', `#EXT-X-TARGETDURATION:${ts.targetDuration}`];
        ts.segments.forEach((s, i) => {
          lines.push(`#EXTINF:${ts.segmentDurations[i]},`, i === 0 ? `http://127.0.0.1:${a.port}/${s}` : s);
        });
        lines.push('#EXT-X-ENDLIST', '');
        return { body: lines.join('\n'), headers: { 'content-type': 'application/vnd.apple.mpegurl' } };
      }
      if (p === '/v.mp4') return { body: mp4 };
      const seg = segs.get(p.slice(1));
      return seg ? { body: seg } : { status: 404 };
    });
    a = await origin((p) => {
      if (p === '/master.m3u8')
        return { status: 302, headers: { location: `http://127.0.0.1:${b.port}/media.m3u8` } };
      if (p === '/v.mp4') return { status: 302, headers: { location: `http://127.0.0.1:${b.port}/v.mp4` } };
      const seg = segs.get(p.slice(1));
      return seg ? { body: seg } : { status: 404 };
    });
    svc = await itemJobsService();
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  const jobHeaders = { Authorization: 'Bearer job-token', Referer: 'https://ref.example/' };

  function assertCleanAt(server: RawServer) {
    assert.ok(heads(server).length > 0);
    for (const head of heads(server)) {
      assert.equal(header(head, 'cookie'), undefined, head);
      assert.equal(header(head, 'authorization'), undefined, head);
      assert.equal(header(head, 'referer'), 'https://ref.example/', head);
      assert.equal(header(head, 'x-config'), 'kept', head);
    }
  }

  it('HLS: the playlist redirected to another origin, and its segments there, are fetched without them', async () => {
    await runHostileJob(
      svc,
      { url: `http://127.0.0.1:${a.port}/master.m3u8`, headers: jobHeaders },
      { endsWithinMs: 30_000, maxRssGrowthMb: 150 },
    );
    assertCleanAt(b);
    // The first origin (the job's) still gets them, for the playlist and the segment it serves.
    const atA = heads(a);
    assert.equal(atA.length, 2);
    for (const head of atA) {
      assert.equal(header(head, 'cookie'), 'config-cookie=1');
      assert.equal(header(head, 'authorization'), 'Bearer job-token');
    }
  });

  it('MP4: the redirect target gets none of them, on the redirected request or the ranges after it', async () => {
    for (const c of b.conns) c.requests.length = 0;
    await runHostileJob(
      svc,
      { url: `http://127.0.0.1:${a.port}/v.mp4`, headers: jobHeaders },
      { endsWithinMs: 30_000, maxRssGrowthMb: 150 },
      '/download/mp4',
    );
    assertCleanAt(b);
  });
});

// ---------------------------------------------------------------------------------------------
// Item 9

const USER = 'alice-user';
const PASSWORD = 's3cr3t-Pa55';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

describe('user:pass@ in a job URL: Basic auth on both paths, redacted everywhere it is shown (item 9)', () => {
  let svc: TestService;
  let site: RawServer;
  let cdn: RawServer;
  let hooks: http.Server;
  const webhookBodies: string[] = [];
  let withCreds = (p: string) => p;

  before(async () => {
    const aes = await makeHlsAes({ seconds: 4 });
    const mp4 = await readFile((await makeMp4({ seconds: 1 })).file);
    const hlsFiles = await preload(aes.dir, [aes.playlistName, aes.keyUri, ...aes.segments]);
    cdn = await origin((p) => {
      const f = hlsFiles.get(p.replace('/cdn/', ''));
      return f ? { body: f } : { status: 404 };
    });
    // Every path needs the credentials, as a site behind Basic auth does.
    site = await origin((p, head): Reply => {
      if (header(head, 'authorization') !== BASIC)
        return { status: 401, headers: { 'www-authenticate': 'Basic' } };
      if (p === '/master.m3u8')
        return {
          body: `#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=320x180\nhls/${aes.playlistName}\n`,
        };
      if (p === '/cdn-media.m3u8') {
        // Segments on another origin: the credentials stay with this one.
        const text = hlsFiles.get(aes.playlistName)!.toString();
        return {
          body: text
            .replace(/^(seg_\d+\.ts)$/gm, `http://127.0.0.1:${cdn.port}/cdn/$1`)
            .replace(`URI="${aes.keyUri}"`, `URI="hls/${aes.keyUri}"`),
        };
      }
      if (p === '/v.mp4') return { body: mp4 };
      if (p === '/loop.mp4') return { status: 302, headers: { location: '/loop.mp4' } };
      const f = p.startsWith('/hls/') ? hlsFiles.get(p.slice(5)) : undefined;
      return f ? { body: f } : { status: 404 };
    });
    withCreds = (p: string) => `http://${USER}:${PASSWORD}@127.0.0.1:${site.port}${p}`;
    hooks = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        webhookBodies.push(body);
        res.end();
      });
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    svc = await itemJobsService();
  });
  after(async () => {
    await site.close();
    await cdn.close();
    await new Promise<void>((resolve) => hooks.close(() => resolve()));
  });

  const callback = () => `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`;

  /** Reads /events while `fn` runs; returns everything the stream carried. */
  async function withEvents(fn: () => Promise<unknown>): Promise<string> {
    const controller = new AbortController();
    const res = await fetch(`${svc.url}/events`, { signal: controller.signal });
    let text = '';
    const reading = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body!) text += decoder.decode(chunk as Uint8Array);
      } catch {
        // aborted below
      }
    })();
    try {
      await fn();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      controller.abort();
      await reading;
    }
    return text;
  }

  async function assertRedactedEverywhere(id: string, events: string) {
    const job = (await (await fetch(`${svc.url}/job/${id}`)).json()) as {
      original_url: string;
      result: { original_url: string } | null;
    };
    const list = await (await fetch(`${svc.url}/jobs?limit=500`)).text();
    const log = await readFile(path.join(svc.config.log_path, LOG_FILE_NAME), 'utf8');
    await svc.waitFor(id, () => webhookBodies.some((b) => b.includes(id)), 10_000);
    const hook = webhookBodies.filter((b) => b.includes(id)).join('\n');
    assert.ok(events.includes(id), 'no SSE event for the job');
    assert.ok(log.includes(id), 'no log line for the job');
    for (const [where, text] of [
      ['GET /job', JSON.stringify(job)],
      ['GET /jobs', list],
      ['SSE', events],
      ['webhook', hook],
      ['log file', log],
    ] as const) {
      assert.ok(!text.includes(PASSWORD), `${where} shows the password: ${text.slice(0, 2000)}`);
      assert.ok(!text.includes(USER), `${where} shows the user name`);
    }
    // Redacted, not dropped: the reader sees that credentials were given.
    assert.match(job.original_url, /^http:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:\d+\//);
    // The stored job keeps the real URL, so a restarted job still authenticates.
    assert.ok(svc.store.get(id)!.request.url.includes(`${USER}:${PASSWORD}@`));
    return job;
  }

  it('HLS: the master, media playlist, key and segments on the URL’s origin get Basic auth; the job completes', async () => {
    let outcome: Awaited<ReturnType<typeof runHostileJob>> | undefined;
    const events = await withEvents(async () => {
      outcome = await runHostileJob(
        svc,
        { url: withCreds('/master.m3u8'), callback_url: callback() },
        { endsWithinMs: 30_000, maxRssGrowthMb: 150 },
      );
    });
    const job = await assertRedactedEverywhere(outcome!.job.id, events);
    assert.match(job.result!.original_url, /\*\*\*:\*\*\*@/);
  });

  it('HLS: segments on another origin are fetched without the Basic auth', async () => {
    await runHostileJob(svc, { url: withCreds('/cdn-media.m3u8') }, { endsWithinMs: 30_000 });
    assert.ok(heads(cdn).length >= 2);
    for (const head of heads(cdn)) assert.equal(header(head, 'authorization'), undefined);
  });

  it('MP4: the file gets Basic auth the same way; the job completes and nothing shows the password', async () => {
    let outcome: Awaited<ReturnType<typeof runHostileJob>> | undefined;
    const events = await withEvents(async () => {
      outcome = await runHostileJob(
        svc,
        { url: withCreds('/v.mp4'), callback_url: callback() },
        { endsWithinMs: 30_000, maxRssGrowthMb: 150 },
        '/download/mp4',
      );
    });
    await assertRedactedEverywhere(outcome!.job.id, events);
  });

  it('a failing job’s error message, its log lines and the CLI’s error do not show the password', async () => {
    const { job } = await runHostileJob(
      svc,
      { url: withCreds('/loop.mp4') },
      { code: 'GABE_ERR_TOO_MANY_REDIRECTS', error: /\*\*\*:\*\*\*@/, endsWithinMs: 20_000 },
      '/download/mp4',
    );
    assert.ok(!(job.error ?? '').includes(PASSWORD));
    const answer = await (await fetch(`${svc.url}/job/${job.id}`)).text();
    assert.ok(!answer.includes(PASSWORD), answer);
    const log = await readFile(path.join(svc.config.log_path, LOG_FILE_NAME), 'utf8');
    assert.ok(!log.includes(PASSWORD));

    const run = gabe(['download', withCreds('/loop.mp4'), '-o', path.join(svc.dir, 'cli.mp4')]);
    const code = await run.exit;
    assert.notEqual(code, 0);
    assert.match(run.stderr(), /GABE_ERR_TOO_MANY_REDIRECTS/);
    assert.ok(!run.output().includes(PASSWORD), run.output());
  });
});
