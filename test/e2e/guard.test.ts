import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Scheduler } from '../../src/jobs/scheduler.js';
import { SqliteJobStore } from '../../src/jobs/store.js';
import type { Job, JobRequest, JobType } from '../../src/jobs/types.js';
import { HttpClient } from '../../src/net/client.js';
import {
  checkUrlDestination,
  classifyAddress,
  type GuardOptions,
  resolveAndCheck,
} from '../../src/net/guard.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../../src/net/retry.js';
import { NativeTransport } from '../../src/net/transports/node-transport.js';
import { hlsDownloader } from '../../src/pipeline/hls/job.js';
import { mp4Downloader } from '../../src/pipeline/mp4/job.js';
import { loadConfig } from '../../src/service/config.js';
import { isGabeError } from '../../src/service/errors.js';
import { createLogger } from '../../src/service/log.js';
import { LocalResults } from '../../src/storage/local-results.js';
import { closeAllServices, startTestService, testFfmpeg } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

const json = (body: unknown) => ({
  headers: { 'content-type': 'application/json' },
  payload: JSON.stringify(body),
});

/** Asserts that `fn` throws (or rejects with) the guard's refusal, whose message matches `message`. */
async function assertForbidden(fn: () => unknown, message?: RegExp): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (err: unknown) => {
      assert.ok(isGabeError(err, 'FORBIDDEN_DESTINATION'), `expected FORBIDDEN_DESTINATION, got ${err}`);
      assert.equal(err.code, 'GABE_ERR_FORBIDDEN_DESTINATION');
      assert.equal(err.retryable, false);
      assert.equal(err.httpStatus, 400);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

/** A resolver for made-up names (there is no network here), counting its calls. */
function fakeDns(table: Record<string, string | string[] | ((call: number) => string)>) {
  const calls: string[] = [];
  const resolve = async (host: string): Promise<LookupAddress[]> => {
    calls.push(host);
    const entry = table[host];
    if (entry === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    }
    const list = typeof entry === 'function' ? [entry(calls.filter((c) => c === host).length)] : entry;
    return [list].flat().map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, calls };
}

/** A plain HTTP server that counts TCP connections, to prove a refused fetch never reached it. */
async function listener(host: string, body = 'reached') {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = http.createServer((_req, res) => res.end(body));
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    server,
    get connections() {
      return connections;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const client = (guard: GuardOptions, extra: { proxy?: string } = {}) =>
  new HttpClient({ timeoutMs: 2000, allowPrivateNetworks: false, guard, ...extra });

describe('classifyAddress', () => {
  const forbidden: [string, string][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['2130706433', 'loopback'], // decimal
    ['0177.0.0.1', 'loopback'], // octal
    ['0x7f000001', 'loopback'], // hex
    ['0x7f.0.0.1', 'loopback'],
    ['127.1', 'loopback'], // short form
    ['127.0.0.1.', 'loopback'], // trailing dot
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'], // IPv4-mapped, dotted
    ['[::ffff:7f00:1]', 'loopback'], // IPv4-mapped, hex (how WHATWG URL prints it)
    ['::127.0.0.1', 'loopback'], // IPv4-compatible
    ['::ffff:0:127.0.0.1', 'loopback'], // IPv4-translated (SIIT)
    ['64:ff9b::127.0.0.1', 'loopback'], // NAT64
    ['2002:7f00:1::', 'loopback'], // 6to4 of 127.0.0.1
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'loopback'], // Teredo, client 127.0.0.1 inverted
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.20.1.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.0.1', 'private'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:192.168.1.1', 'private'],
    ['2002:c0a8:101::1', 'private'], // 6to4 of 192.168.1.1
    ['169.254.169.254', 'link-local'], // cloud metadata
    ['0xa9fea9fe', 'link-local'], // 169.254.169.254 in hex
    ['2852039166', 'link-local'], // 169.254.169.254 in decimal
    ['64:ff9b::a9fe:a9fe', 'link-local'], // NAT64 of 169.254.169.254
    ['::ffff:169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'], // zone id, as DNS may answer
    ['febf:ffff::1', 'link-local'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['fc00::1', 'unique-local'],
    ['fd00::1', 'unique-local'],
    ['fec0::1', 'site-local'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['[ff05::2]', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['4294967295', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['192.88.99.1', 'reserved'],
    ['::5db8:d822', 'reserved'], // IPv4-compatible is deprecated even for a public address
    ['64:ff9b:1::1', 'reserved'], // local-use NAT64
    ['100::1', 'reserved'], // discard-only
    ['1::1', 'reserved'], // outside 2000::/3
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['2001:2::1', 'benchmarking'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.1', 'documentation'],
    ['203.0.113.1', 'documentation'],
    ['2001:db8::1', 'documentation'],
  ];
  for (const [ip, reason] of forbidden) {
    it(`refuses ${ip} as ${reason}`, () => assert.equal(classifyAddress(ip), reason));
  }

  const allowed = [
    '93.184.216.34',
    '1.1.1.1',
    '8.8.8.8',
    '172.15.255.255', // just below 172.16/12
    '172.32.0.0', // just above
    '100.63.255.255', // just below 100.64/10
    '100.128.0.0', // just above
    '169.253.255.255',
    '192.169.0.1',
    '223.255.255.255',
    '2606:4700::1111',
    '2a00:1450:4001:82b::200e',
    '::ffff:93.184.216.34', // mapped public
    '64:ff9b::5db8:d822', // NAT64 of a public address
    '2002:5db8:d822::1', // 6to4 of a public address
  ];
  for (const ip of allowed) {
    it(`allows the public address ${ip}`, () => assert.equal(classifyAddress(ip), null));
  }

  it('answers "invalid" (refuse) for anything that is not an IP address', () => {
    for (const x of ['example.com', '', '1.2.3.4.5', '256.0.0.1', '0x1ffffffff', 'fe80::g', 'cafe.be']) {
      assert.equal(classifyAddress(x), 'invalid', x);
    }
  });
});

describe('checkUrlDestination (sync, per URL and per hop)', () => {
  // WHATWG URL normalises every legacy IPv4 spelling of a special-scheme host to dotted decimal, and
  // IPv6 to its canonical text: the first assertion proves it, the second that the result is refused.
  const spellings: [string, string][] = [
    ['http://2130706433/', '127.0.0.1'],
    ['http://0x7f000001/', '127.0.0.1'],
    ['http://0177.0.0.1/', '127.0.0.1'],
    ['http://017700000001/', '127.0.0.1'],
    ['http://0x7f.1/', '127.0.0.1'],
    ['http://0x7f.0x0.0x0.0x1/', '127.0.0.1'],
    ['http://127.1/', '127.0.0.1'],
    ['http://127.000.000.001/', '127.0.0.1'],
    ['http://127.0.0.1./', '127.0.0.1'],
    ['http://%31%32%37.0.0.1/', '127.0.0.1'],
    ['http://0/', '0.0.0.0'],
    ['http://0xa9fea9fe/latest/meta-data/', '169.254.169.254'],
    ['http://[0:0:0:0:0:0:0:1]/', '[::1]'],
    ['http://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]'],
    ['http://[::127.0.0.1]/', '[::7f00:1]'],
    ['http://[64:ff9b::169.254.169.254]/', '[64:ff9b::a9fe:a9fe]'],
  ];
  for (const [url, host] of spellings) {
    it(`refuses ${url} (WHATWG URL reads it as ${host})`, async () => {
      assert.equal(new URL(url).hostname, host);
      await assertForbidden(() => checkUrlDestination(url));
    });
  }

  it('refuses names that are local by definition, in any case and with a trailing dot', async () => {
    for (const url of [
      'http://localhost/',
      'http://LOCALHOST./',
      'https://localhost:8443/x.m3u8',
      'http://foo.localhost/',
      'http://localhost.localdomain/',
      'http://ip6-localhost/',
      'http://printer.local/',
      'http://nas.home.arpa/',
      'http://metadata.google.internal/computeMetadata/v1/',
    ]) {
      await assertForbidden(() => checkUrlDestination(url), /name/);
    }
  });

  it('refuses with a message naming the host and the reason', async () => {
    await assertForbidden(
      () => checkUrlDestination('http://169.254.169.254/latest/meta-data/'),
      /169\.254\.169\.254: a link-local address; .*allow_private_networks/,
    );
  });

  it('allows public names and addresses, and names that only look local', () => {
    for (const url of [
      'https://example.com/master.m3u8',
      'http://93.184.216.34/v.mp4',
      'http://[2606:4700::1111]/v.mp4',
      'http://localhost.example.com/',
      'http://mylocal/',
      'http://internal.example/',
    ]) {
      checkUrlDestination(url);
    }
  });

  it('answers INVALID_URL for schemes other than http and https, as checkUrl does', () => {
    for (const url of ['ftp://example.com/x', 'file:///etc/passwd', 'gopher://127.0.0.1/', 'not a url']) {
      assert.throws(
        () => checkUrlDestination(url),
        (e: unknown) => isGabeError(e, 'INVALID_URL'),
      );
    }
  });

  it('lets the test-only allowAddresses seam through exactly the listed addresses', async () => {
    checkUrlDestination('http://127.0.0.1:9/', { allowAddresses: ['127.0.0.1'] });
    checkUrlDestination('http://[::ffff:127.0.0.1]/', { allowAddresses: ['::ffff:7f00:1'] });
    await assertForbidden(() => checkUrlDestination('http://127.0.0.2/', { allowAddresses: ['127.0.0.1'] }));
  });
});

describe('resolveAndCheck (DNS)', () => {
  it('refuses a name when any of its addresses is forbidden, and says which', async () => {
    const dns = fakeDns({ 'mixed.example': ['93.184.216.34', '10.0.0.5'] });
    await assertForbidden(
      () => resolveAndCheck('mixed.example', { resolve: dns.resolve }),
      /mixed\.example: it resolves to 10\.0\.0\.5 \(private\)/,
    );
  });

  it('refuses names resolving to IPv6 loopback or mapped forms', async () => {
    const dns = fakeDns({ 'six.example': '::1', 'mapped.example': '::ffff:169.254.169.254' });
    await assertForbidden(() => resolveAndCheck('six.example', { resolve: dns.resolve }), /loopback/);
    await assertForbidden(() => resolveAndCheck('mapped.example', { resolve: dns.resolve }), /link-local/);
  });

  it('returns the answers of a public name', async () => {
    const dns = fakeDns({ 'cdn.example': ['93.184.216.34', '2606:4700::1111'] });
    const answers = await resolveAndCheck('cdn.example', { resolve: dns.resolve });
    assert.deepEqual(
      answers.map((a) => a.address),
      ['93.184.216.34', '2606:4700::1111'],
    );
  });

  it('does not refuse a name that does not resolve, or not in time (the fetch fails later)', async () => {
    const dns = fakeDns({});
    assert.deepEqual(await resolveAndCheck('nowhere.example', { resolve: dns.resolve }), []);
    const never = { resolve: () => new Promise<LookupAddress[]>(() => {}) };
    assert.deepEqual(await resolveAndCheck('slow.example', never, { timeoutMs: 50 }), []);
  });

  it('checks IP literals and local names without DNS', async () => {
    const dns = fakeDns({});
    await assertForbidden(() => resolveAndCheck('[::1]', { resolve: dns.resolve }));
    await assertForbidden(() => resolveAndCheck('foo.localhost', { resolve: dns.resolve }));
    assert.deepEqual(dns.calls, []);
  });
});

describe('connect-time guard (DNS rebinding)', () => {
  let origin: Awaited<ReturnType<typeof listener>>;
  before(async () => {
    origin = await listener('127.0.0.1');
  });
  after(() => origin.close());

  it('refuses to connect when the name resolves to loopback, and the listening origin sees no connection', async () => {
    const dns = fakeDns({ 'rebind.example': '127.0.0.1' });
    const http = client({ resolve: dns.resolve });
    try {
      await assertForbidden(
        () => http.get(`http://rebind.example:${origin.port}/`),
        /^refusing to connect to 127\.0\.0\.1 \(loopback\) for host rebind\.example/,
      );
    } finally {
      await http.destroy();
    }
    assert.equal(origin.connections, 0);
  });

  it('a name that answers public to the submission check and loopback to the connect is still refused', async () => {
    // The rebinding attack: the first lookup (our early check) sees a public address, the next
    // (the one a naive client would connect with) sees 127.0.0.1. The connector resolves once and
    // connects to exactly what it checked.
    const dns = fakeDns({ 'rebind.example': (n) => (n === 1 ? '93.184.216.34' : '127.0.0.1') });
    await resolveAndCheck('rebind.example', { resolve: dns.resolve });
    const http = client({ resolve: dns.resolve });
    try {
      await assertForbidden(() => http.get(`http://rebind.example:${origin.port}/`), /127\.0\.0\.1/);
    } finally {
      await http.destroy();
    }
    assert.equal(origin.connections, 0);
  });

  it('refuses over https too (the TLS connect uses the same guarded lookup)', async () => {
    const dns = fakeDns({ 'rebind.example': '127.0.0.1' });
    const http = client({ resolve: dns.resolve });
    try {
      await assertForbidden(() => http.get(`https://rebind.example:${origin.port}/`), /127\.0\.0\.1/);
    } finally {
      await http.destroy();
    }
    assert.equal(origin.connections, 0);
  });

  it('refuses a name with mixed answers, so Happy Eyeballs cannot fall back to the private one', async () => {
    const dns = fakeDns({ 'mixed.example': ['::1', '127.0.0.1'] });
    const http = client({ resolve: dns.resolve });
    try {
      await assertForbidden(() => http.get(`http://mixed.example:${origin.port}/`), /loopback/);
    } finally {
      await http.destroy();
    }
    assert.equal(origin.connections, 0);
  });

  it('the refusal is not retried: the retry policy sees a non-retryable error and resolves once', async () => {
    const dns = fakeDns({ 'rebind.example': '127.0.0.1' });
    const http = client({ resolve: dns.resolve });
    try {
      await assertForbidden(() =>
        withRetry(() => http.get(`http://rebind.example:${origin.port}/`), {
          ...DEFAULT_RETRY_POLICY,
          baseDelayMs: 1,
        }),
      );
    } finally {
      await http.destroy();
    }
    assert.deepEqual(dns.calls, ['rebind.example']);
  });

  it('the transport itself refuses IP literals (which net.connect never looks up)', async () => {
    const transport = new NativeTransport({ connections: 1, timeoutMs: 2000, guard: {} });
    try {
      await assertForbidden(
        () => transport.request(new URL(`http://127.0.0.1:${origin.port}/`), { method: 'GET', headers: {} }),
        /refusing to connect to 127\.0\.0\.1 \(loopback\)/,
      );
      await assertForbidden(() =>
        transport.request(new URL(`http://[::ffff:127.0.0.1]:${origin.port}/`), {
          method: 'GET',
          headers: {},
        }),
      );
    } finally {
      await transport.destroy();
    }
    assert.equal(origin.connections, 0);
  });

  it('the connector connects to an explicitly allowed address (the test seam) and to nothing else', async () => {
    const dns = fakeDns({ 'allowed.test': '127.0.0.1' });
    const http = client({ resolve: dns.resolve, allowAddresses: ['127.0.0.1'] });
    try {
      const { data } = await http.getBuffer(`http://allowed.test:${origin.port}/`);
      assert.equal(data.toString(), 'reached');
    } finally {
      await http.destroy();
    }
    assert.equal(origin.connections, 1);
  });

  it('with allowPrivateNetworks the same loopback origin is reachable', async () => {
    const http = new HttpClient({ timeoutMs: 2000, allowPrivateNetworks: true });
    try {
      const { data } = await http.getBuffer(`http://127.0.0.1:${origin.port}/`);
      assert.equal(data.toString(), 'reached');
    } finally {
      await http.destroy();
    }
  });
});

describe('redirect hops', () => {
  let first: http.Server;
  let firstPort = 0;
  let second: Awaited<ReturnType<typeof listener>>;
  const redirects = new Map<string, string>();
  let dns: ReturnType<typeof fakeDns>;
  let guard: GuardOptions;

  before(async () => {
    // The first hop is an "allowed" origin on 127.0.0.1 (through the test seam); the second, on
    // 127.0.0.2, is a real listener that a refused hop must never reach.
    first = http.createServer((req, res) => {
      const to = redirects.get(req.url ?? '');
      if (to) res.writeHead(302, { location: to.replace('$SECOND', String(second.port)) }).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve));
    firstPort = (first.address() as AddressInfo).port;
    second = await listener('127.0.0.2');
    dns = fakeDns({ 'allowed.test': '127.0.0.1', 'internal.test': '10.1.2.3', 'second.test': '127.0.0.2' });
    guard = { resolve: dns.resolve, allowAddresses: ['127.0.0.1'] };
    redirects.set('/to-second', 'http://127.0.0.2:$SECOND/');
    redirects.set('/to-metadata', 'http://169.254.169.254/latest/meta-data/');
    redirects.set('/to-decimal', 'http://2130706434:$SECOND/'); // 127.0.0.2
    redirects.set('/to-internal-name', 'http://internal.test/');
    redirects.set('/to-second-name', 'http://second.test:$SECOND/');
    redirects.set('/to-mapped', 'http://[::ffff:127.0.0.2]:$SECOND/');
    redirects.set('/to-ftp', 'ftp://example.com/');
  });
  after(async () => {
    await new Promise<void>((resolve) => first.close(() => resolve()));
    await second.close();
  });

  for (const [path, why] of [
    ['/to-second', /127\.0\.0\.2: a loopback address/],
    ['/to-metadata', /169\.254\.169\.254: a link-local address/],
    ['/to-decimal', /127\.0\.0\.2/],
    ['/to-internal-name', /internal\.test: it resolves to 10\.1\.2\.3 \(private\)|10\.1\.2\.3 \(private\)/],
    ['/to-second-name', /127\.0\.0\.2 \(loopback\) for host second\.test/],
    ['/to-mapped', /loopback/],
  ] as const) {
    it(`refuses a redirect from an allowed origin ${path.replace('/to-', 'to ')} without connecting to it`, async () => {
      const http = client(guard);
      try {
        await assertForbidden(() => http.get(`http://allowed.test:${firstPort}${path}`), why);
      } finally {
        await http.destroy();
      }
      assert.equal(second.connections, 0);
    });
  }

  it('a redirect to another scheme stays INVALID_URL', async () => {
    const http = client(guard);
    try {
      await assert.rejects(http.get(`http://allowed.test:${firstPort}/to-ftp`), (e: unknown) =>
        isGabeError(e, 'INVALID_URL'),
      );
    } finally {
      await http.destroy();
    }
  });

  it('through a proxy, every hop name is still checked with our DNS before the request', async () => {
    // The proxy is never contacted: the target name is refused first.
    const proxy = await listener('127.0.0.1');
    const http = client({ resolve: dns.resolve }, { proxy: `http://127.0.0.1:${proxy.port}` });
    try {
      await assertForbidden(() => http.get('http://internal.test/x.mp4'), /10\.1\.2\.3 \(private\)/);
      await assertForbidden(() => http.get('http://[fd00::1]/x.mp4'), /unique-local/);
    } finally {
      await http.destroy();
      await proxy.close();
    }
    assert.equal(proxy.connections, 0);
  });
});

describe('jobs whose later hop is forbidden', () => {
  let origin: http.Server;
  let port = 0;
  let forbiddenPeer: Awaited<ReturnType<typeof listener>>;
  let store: SqliteJobStore;
  let scheduler: Scheduler;
  const routes = new Map<string, { status?: number; headers?: Record<string, string>; body?: string }>();

  before(async () => {
    forbiddenPeer = await listener('127.0.0.2', 'x'.repeat(188));
    origin = http.createServer((req, res) => {
      const r = routes.get(req.url ?? '');
      if (!r) return void res.writeHead(404).end();
      res.writeHead(r.status ?? 200, r.headers ?? {}).end(r.body ?? '');
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    port = (origin.address() as AddressInfo).port;
    const peer = `http://127.0.0.2:${forbiddenPeer.port}`;
    const seg = 'G'.repeat(188 * 10);
    routes.set('/redirect.mp4', { status: 302, headers: { location: 'http://169.254.169.254/v.mp4' } });
    routes.set('/master.m3u8', {
      body: `#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n${peer}/media.m3u8\n`,
    });
    routes.set('/segment.m3u8', {
      body: `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n${peer}/seg0.ts\n#EXT-X-ENDLIST\n`,
    });
    routes.set('/key.m3u8', {
      body:
        '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI="http://[::ffff:a9fe:a9fe]/key"\n' +
        `#EXTINF:2,\nhttp://allowed.test:${port}/seg0.ts\n#EXT-X-ENDLIST\n`,
    });
    routes.set('/seg0.ts', { body: seg.slice(0, 1024) });

    const dir = tempDir('gabe-guard-');
    const config = loadConfig({
      file: path.join(dir, 'config.json'),
      env: {},
      overrides: {
        allow_private_networks: false,
        temp_path: path.join(dir, 'temp'),
        output_path: path.join(dir, 'out'),
        database_path: path.join(dir, 'gabe.db'),
        log_path: path.join(dir, 'logs'),
        connection_timeout: 2,
        max_retries: 2,
      },
    });
    // The service's own downloaders, scheduler and store; only DNS and one allowed address are
    // injected, through the downloaders' test seam, so the first hop can live on 127.0.0.1.
    const dns = fakeDns({ 'allowed.test': '127.0.0.1' });
    const guard: GuardOptions = { resolve: dns.resolve, allowAddresses: ['127.0.0.1'] };
    store = new SqliteJobStore(config.database_path);
    scheduler = new Scheduler({
      store,
      config,
      ffmpeg: await testFfmpeg(),
      log: createLogger({ logPath: config.log_path, stdout: false }),
      results: new LocalResults(config.output_path),
      downloaders: {
        mp4: { run: (ctx) => mp4Downloader.run(ctx, { guard }) },
        hls: { run: (ctx) => hlsDownloader.run(ctx, { guard }) },
      },
    });
    scheduler.start();
  });
  after(async () => {
    await scheduler.stop();
    store.close();
    await new Promise<void>((resolve) => origin.close(() => resolve()));
    await forbiddenPeer.close();
  });

  async function run(type: JobType, pathname: string): Promise<Job> {
    const request: JobRequest = { url: `http://allowed.test:${port}${pathname}` };
    const job = await scheduler.submit({ type, request, clientIp: '10.9.9.9', videoName: `guard-${type}` });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const j = store.get(job.id);
      if (j && ['COMPLETED', 'FAILED', 'CANCELLED'].includes(j.status)) return j;
      if (Date.now() > deadline) throw new Error(`job did not finish: ${JSON.stringify(j)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('an MP4 job redirected to 169.254.169.254 fails with GABE_ERR_FORBIDDEN_DESTINATION', async () => {
    const job = await run('mp4', '/redirect.mp4');
    assert.equal(job.status, 'FAILED');
    assert.equal(job.error_code, 'GABE_ERR_FORBIDDEN_DESTINATION');
    assert.match(job.error ?? '', /169\.254\.169\.254/);
  });

  it('an HLS job whose variant playlist is on a loopback address fails with the guard code', async () => {
    const job = await run('hls', '/master.m3u8');
    assert.equal(job.error_code, 'GABE_ERR_FORBIDDEN_DESTINATION', job.error ?? '');
    assert.equal(forbiddenPeer.connections, 0);
  });

  it('an HLS job whose segment is on a loopback address fails with the guard code, not SEGMENT', async () => {
    const job = await run('hls', '/segment.m3u8');
    assert.equal(job.error_code, 'GABE_ERR_FORBIDDEN_DESTINATION', job.error ?? '');
    assert.match(job.error ?? '', /127\.0\.0\.2/);
    assert.equal(forbiddenPeer.connections, 0);
  });

  it('an HLS job whose AES key is at an IPv4-mapped metadata address fails with the guard code, not KEY', async () => {
    const job = await run('hls', '/key.m3u8');
    assert.equal(job.error_code, 'GABE_ERR_FORBIDDEN_DESTINATION', job.error ?? '');
    assert.match(job.error ?? '', /link-local/);
  });
});

describe('submission through the API (allow_private_networks: false)', () => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let ip = 0;
  before(async () => {
    svc = await startTestService({ allow_private_networks: false, max_jobs_per_ip: 0 });
  });
  after(() => closeAllServices());

  const post = (endpoint: string, body: Record<string, unknown>) =>
    svc.app.inject({ method: 'POST', url: endpoint, ...json(body), remoteAddress: `10.2.0.${++ip}` });

  const forms = [
    'http://127.0.0.1/v.mp4',
    'http://2130706433/v.mp4',
    'http://0x7f000001/v.mp4',
    'http://0177.0.0.1/v.mp4',
    'http://0x7f.1/v.mp4',
    'http://127.1/v.mp4',
    'http://127.0.0.1.:8080/v.mp4',
    'http://user:pass@127.0.0.1/v.mp4',
    'http://[::1]/v.mp4',
    'http://[::ffff:127.0.0.1]/v.mp4',
    'http://[::ffff:7f00:1]/v.mp4',
    'http://[::127.0.0.1]/v.mp4',
    'http://[fe80::1]/v.mp4',
    'http://[fd00::1]/v.mp4',
    'http://169.254.169.254/latest/meta-data/',
    'http://0xa9fea9fe/latest/meta-data/',
    'http://100.64.0.1/v.mp4',
    'http://10.0.0.1/v.mp4',
    'http://172.16.0.1/v.mp4',
    'http://172.31.255.254/v.mp4',
    'http://192.168.1.1/v.mp4',
    'http://0.0.0.0:8000/v.mp4',
    'http://224.0.0.1/v.mp4',
    'http://[ff02::1]/v.mp4',
    'http://[64:ff9b::a9fe:a9fe]/v.mp4',
    'http://[2002:7f00:1::]/v.mp4',
    'https://localhost/v.mp4',
    'http://LOCALHOST.:8000/v.mp4',
    'http://foo.localhost/v.mp4',
    'http://metadata.google.internal/computeMetadata/v1/',
  ];

  for (const endpoint of ['/download/mp4', '/download/']) {
    it(`POST ${endpoint} answers 400 GABE_ERR_FORBIDDEN_DESTINATION for ${forms.length} forbidden spellings and queues nothing`, async () => {
      for (const url of forms) {
        const res = await post(endpoint, { url });
        assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
        assert.equal(res.json().code, 'GABE_ERR_FORBIDDEN_DESTINATION', url);
        assert.match(res.json().detail, /refusing host/, url);
      }
      assert.equal(svc.store.countByStatus().PENDING, 0);
    });
  }

  it('refuses a request-supplied proxy on a private address (it would reach internal hosts)', async () => {
    for (const proxy of ['http://127.0.0.1:3128', 'socks5://10.0.0.1:1080', 'http://localhost:8080']) {
      const res = await post('/download/mp4', { url: 'http://gabe-test.invalid/v.mp4', proxy });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().code, 'GABE_ERR_FORBIDDEN_DESTINATION');
      assert.match(res.json().detail, /^refusing proxy/);
    }
  });

  it('accepts a name that does not resolve (the job then fails with a network error, not the guard code)', async () => {
    const res = await post('/download/mp4', { url: 'http://gabe-test.invalid/v.mp4' });
    assert.equal(res.statusCode, 200, res.body);
    const job = await svc.waitFor(res.json().job_id, ['FAILED']);
    assert.equal(job.error_code, 'GABE_ERR_NETWORK');
  });

  it('still answers 422 INVALID_URL for other schemes', async () => {
    const res = await post('/download/mp4', { url: 'file:///etc/passwd' });
    assert.equal(res.statusCode, 422);
    assert.equal(res.json().code, 'GABE_ERR_INVALID_URL');
  });
});

describe('submission with allow_private_networks: true', () => {
  after(() => closeAllServices());

  it('accepts loopback URLs and request proxies (downloads from them are proven by the other suites)', async () => {
    const svc = await startTestService({ allow_private_networks: true });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      ...json({ url: 'http://127.0.0.1:9/v.mp4', proxy: 'http://127.0.0.1:9' }),
    });
    assert.equal(res.statusCode, 200, res.body);
  });
});
