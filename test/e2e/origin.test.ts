// Proves the test origin (test/helpers/origin.ts) behaves as documented, so download tests that rely on
// its faults fail because of the downloader, never because of the harness.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { type FaultRule, type Origin, parseRange, startOrigin } from '../helpers/origin.js';

// A private agent: closing it in after() frees sockets so the test process exits promptly.
const agent = new Agent({ keepAliveTimeout: 1_000 });
const get = (url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') =>
  request(url, { method, headers, dispatcher: agent });

interface RawResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  bytes: number;
  complete: boolean;
  error?: string;
  headersAt: number;
  endAt: number;
}

/** node:http GET that reports how many body bytes arrived before the connection ended, instead of throwing. */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<RawResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const headersAt = Date.now() - t0;
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      const done = (error?: string) =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          bytes,
          complete: res.complete,
          error,
          headersAt,
          endAt: Date.now() - t0,
        });
      res.on('end', () => done());
      res.on('error', (e) => done(e.message));
      res.on('aborted', () => done('aborted'));
    });
    req.on('error', (e) =>
      resolve({
        status: 0,
        headers: {},
        bytes: 0,
        complete: false,
        error: (e as NodeJS.ErrnoException).code ?? e.message,
        headersAt: -1,
        endAt: Date.now() - t0,
      }),
    );
  });
}

// Deterministic, non-repeating bytes so a wrong offset shows up as a wrong body.
const DATA = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31 + (i >> 8)) & 0xff));
let dir: string;
let origin: Origin;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'gabe-origin-test-'));
  await writeFile(path.join(dir, 'data.ts'), DATA);
  for (const name of ['index.m3u8', 'seg.m4s', 'init.mp4', 'k.key', 'subs.vtt']) {
    await writeFile(path.join(dir, name), 'x');
  }
  origin = await startOrigin({ root: dir, seed: 7 });
});
after(async () => {
  await origin.close();
  await agent.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => origin.reset());

describe('static files', () => {
  test('full GET: length, Accept-Ranges, content type, validators', async () => {
    const res = await get(`${origin.url}/data.ts`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(DATA.length));
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.headers['content-type'], 'video/mp2t');
    assert.ok(res.headers.etag && res.headers['last-modified']);
    assert.deepEqual(Buffer.from(await res.body.arrayBuffer()), DATA);
  });

  test('content types by extension', async () => {
    const expected: Record<string, string> = {
      'index.m3u8': 'application/vnd.apple.mpegurl',
      'seg.m4s': 'video/mp4',
      'init.mp4': 'video/mp4',
      'k.key': 'application/octet-stream',
      'subs.vtt': 'text/vtt; charset=utf-8',
    };
    for (const [name, type] of Object.entries(expected)) {
      const res = await get(`${origin.url}/${name}`);
      await res.body.dump();
      assert.equal(res.headers['content-type'], type, name);
    }
  });

  test('Range forms answer 206 with Content-Range', async () => {
    const n = DATA.length;
    const cases: [string, number, number][] = [
      ['bytes=10-19', 10, 19],
      ['bytes=199990-', 199_990, n - 1],
      ['bytes=-5', n - 5, n - 1],
      ['bytes=100-999999', 100, n - 1], // end past EOF is clamped
      ['bytes=-999999', 0, n - 1], // suffix longer than the file = whole file
    ];
    for (const [range, start, end] of cases) {
      const res = await get(`${origin.url}/data.ts`, { range });
      assert.equal(res.statusCode, 206, range);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${n}`, range);
      assert.equal(res.headers['content-length'], String(end - start + 1), range);
      assert.deepEqual(Buffer.from(await res.body.arrayBuffer()), DATA.subarray(start, end + 1), range);
    }
  });

  test('unsatisfiable Range answers 416 with bytes */size; odd forms are ignored', async () => {
    for (const range of ['bytes=200000-', 'bytes=-0', 'bytes=999999-1000000']) {
      const res = await get(`${origin.url}/data.ts`, { range });
      await res.body.dump();
      assert.equal(res.statusCode, 416, range);
      assert.equal(res.headers['content-range'], `bytes */${DATA.length}`);
    }
    for (const range of ['bytes=0-1,5-6', 'bytes=9-3', 'items=0-1']) {
      const res = await get(`${origin.url}/data.ts`, { range });
      await res.body.dump();
      assert.equal(res.statusCode, 200, range);
    }
    assert.deepEqual(parseRange('bytes=0-0', 1), { start: 0, end: 0 });
    assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable');
  });

  test('If-Range with a stale validator sends the whole file', async () => {
    const res = await get(`${origin.url}/data.ts`, { range: 'bytes=0-9', 'if-range': '"stale"' });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
  });

  test('HEAD: same headers, no body', async () => {
    const res = await get(`${origin.url}/data.ts`, {}, 'HEAD');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(DATA.length));
    assert.equal((await res.body.arrayBuffer()).byteLength, 0);
    assert.equal(origin.requests[0]?.method, 'HEAD');
  });

  test('404 for missing files and for ../ escapes', async () => {
    for (const p of ['/missing.ts', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd']) {
      const res = await get(`${origin.url}${p}`);
      await res.body.dump();
      assert.equal(res.statusCode, 404, p);
    }
  });

  test('ranges: false ignores Range; contentLength: false sends chunked', async () => {
    origin.setOptions({ ranges: false });
    let res = await get(`${origin.url}/data.ts`, { range: 'bytes=0-9' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['accept-ranges'], undefined);
    assert.equal((await res.body.arrayBuffer()).byteLength, DATA.length);
    origin.setOptions({ ranges: true, contentLength: false });
    res = await get(`${origin.url}/data.ts`);
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.deepEqual(Buffer.from(await res.body.arrayBuffer()), DATA);
  });

  test('serveDir, addFile, redirect, routes', async () => {
    origin.serveDir('/vod', dir);
    origin.addFile('/alias.ts', path.join(dir, 'data.ts'));
    origin.redirect('/old', '/vod/data.ts', 301);
    origin.route('/fixed.m3u8', { body: '#EXTM3U\n', contentType: 'application/vnd.apple.mpegurl' });
    let calls = 0;
    origin.route('/dyn', (_req, _res, ctx) => ctx.send(`call ${++calls} q=${ctx.url.searchParams.get('q')}`));

    const r1 = await get(`${origin.url}/vod/data.ts`, { range: 'bytes=0-3' });
    assert.deepEqual(Buffer.from(await r1.body.arrayBuffer()), DATA.subarray(0, 4));
    const r2 = await get(`${origin.url}/alias.ts`);
    assert.equal((await r2.body.arrayBuffer()).byteLength, DATA.length);
    const r3 = await get(`${origin.url}/old`);
    await r3.body.dump();
    assert.equal(r3.statusCode, 301);
    assert.equal(r3.headers.location, '/vod/data.ts');
    const r4 = await get(`${origin.url}/fixed.m3u8`, { range: 'bytes=1-' });
    assert.equal(r4.statusCode, 206);
    assert.equal(await r4.body.text(), 'EXTM3U\n');
    const r5 = await get(`${origin.url}/dyn?q=1`);
    assert.equal(await r5.body.text(), 'call 1 q=1');

    assert.equal(origin.countRequests('/dyn'), 1);
    assert.equal(origin.countRequests(/\.ts$/), 2);
    assert.equal(
      origin.countRequests((r) => r.path === '/old'),
      1,
    );
    assert.deepEqual(
      origin.requests.map((r) => r.status),
      [206, 200, 301, 206, 200],
    );
    assert.ok(origin.requests.every((r) => r.completed));
    origin.reset();
    assert.equal(origin.requests.length, 0);
  });
});

describe('faults', () => {
  test('status with Retry-After, limited by times', async () => {
    const f = origin.addFault({ match: /data\.ts$/, status: 503, retryAfter: 2, times: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await get(`${origin.url}/data.ts`);
      await res.body.dump();
      statuses.push(res.statusCode);
      if (res.statusCode === 503) assert.equal(res.headers['retry-after'], '2');
    }
    assert.deepEqual(statuses, [503, 503, 200]);
    assert.equal(f.hits, 2);
    assert.deepEqual(
      origin.requests.map((r) => r.faults),
      [[0], [0], []],
    );
  });

  test('status only for matching paths; other codes pass through', async () => {
    origin.faults({ match: '/k.key', status: 403 }, { match: /m3u8/, status: 429 });
    for (const [p, s] of [
      ['/k.key', 403],
      ['/index.m3u8', 429],
      ['/data.ts', 200],
    ] as const) {
      const res = await get(`${origin.url}${p}`);
      await res.body.dump();
      assert.equal(res.statusCode, s, p);
    }
  });

  test('reset before headers: the request fails', async () => {
    origin.addFault({ reset: 'before-headers' });
    const r = await rawGet(`${origin.url}/data.ts`);
    assert.equal(r.status, 0);
    assert.equal(r.error, 'ECONNRESET');
    await assert.rejects(get(`${origin.url}/data.ts`));
  });

  test('reset after headers: headers arrive, the body does not', async () => {
    origin.addFault({ reset: 'after-headers' });
    const r = await rawGet(`${origin.url}/data.ts`);
    assert.equal(r.status, 200);
    assert.equal(r.bytes, 0);
    assert.equal(r.complete, false);
    const res = await get(`${origin.url}/data.ts`);
    assert.equal(res.statusCode, 200);
    await assert.rejects(res.body.arrayBuffer());
  });

  test('truncate by bytes and by fraction, Content-Length still the full size', async () => {
    origin.addFault({ match: /data/, truncate: { bytes: 1000 }, times: 1 });
    origin.addFault({ match: /data/, truncate: { fraction: 0.5 }, skip: 1, times: 1 });
    const a = await rawGet(`${origin.url}/data.ts`);
    assert.equal(a.headers['content-length'], String(DATA.length));
    assert.equal(a.bytes, 1000);
    assert.equal(a.complete, false);
    const b = await rawGet(`${origin.url}/data.ts`, { range: 'bytes=1000-' });
    assert.equal(b.status, 206);
    assert.equal(b.bytes, Math.floor((DATA.length - 1000) / 2));
    assert.equal(b.complete, false);
    const res = await get(`${origin.url}/data.ts`); // faults used up
    assert.equal((await res.body.arrayBuffer()).byteLength, DATA.length);
    const truncated = origin.requests.filter((r) => r.faults.length > 0);
    assert.ok(truncated.every((r) => !r.completed));
  });

  test('skip + times chain faults: 503, then a short body, then the file', async () => {
    origin.faults(
      { match: /data/, status: 503, times: 1 },
      { match: /data/, truncate: { bytes: 10 }, skip: 1, times: 1 },
    );
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await rawGet(`${origin.url}/data.ts`));
    assert.deepEqual(
      results.map((r) => [r.status, r.complete]),
      [
        [503, true],
        [200, false],
        [200, true],
      ],
    );
    assert.equal(results[1]?.bytes, 10);
  });

  test('truncate a chunked response', async () => {
    origin.addFault({ truncate: { bytes: 5000 }, chunked: true });
    const r = await rawGet(`${origin.url}/data.ts`);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.bytes, 5000);
    assert.equal(r.complete, false);
  });

  test('stall before headers and after part of the body', async () => {
    origin.addFault({ stall: { ms: 300, beforeHeaders: true }, times: 1 });
    const a = await rawGet(`${origin.url}/data.ts`);
    assert.ok(a.headersAt >= 280, `headers after ${a.headersAt} ms`);
    assert.equal(a.bytes, DATA.length);

    origin.faults({ stall: { ms: 300, afterBytes: 10_000 } });
    const b = await rawGet(`${origin.url}/data.ts`);
    assert.ok(b.headersAt < 200, `headers after ${b.headersAt} ms`);
    assert.ok(b.endAt >= 280, `body after ${b.endAt} ms`);
    assert.equal(b.bytes, DATA.length);
    assert.ok(b.complete);
  });

  test('latency applies to every request', async () => {
    origin.addFault({ latencyMs: 150 });
    const t0 = Date.now();
    const res = await get(`${origin.url}/index.m3u8`);
    await res.body.dump();
    assert.ok(Date.now() - t0 >= 140);
  });

  test('faults combine: latency for all, status for one path', async () => {
    origin.faults({ latencyMs: 100 }, { match: /m3u8/, status: 500 });
    const t0 = Date.now();
    const res = await get(`${origin.url}/index.m3u8`);
    await res.body.dump();
    assert.equal(res.statusCode, 500);
    assert.ok(Date.now() - t0 >= 90);
    assert.deepEqual(origin.requests[0]?.faults, [0, 1]);
  });

  test('throttle roughly paces the body', async () => {
    origin.addFault({ throttleBytesPerSec: 400_000 }); // 200 kB at 400 kB/s: about 0.5 s
    const r = await rawGet(`${origin.url}/data.ts`);
    assert.equal(r.bytes, DATA.length);
    assert.ok(r.endAt >= 400 && r.endAt < 2_000, `took ${r.endAt} ms`);
  });

  test('html answers 200 text/html instead of the file', async () => {
    origin.addFault({ match: /m3u8$/, html: true });
    const res = await get(`${origin.url}/index.m3u8`);
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(await res.body.text(), /<html/);
  });

  test('probability is deterministic for a seed', async () => {
    const pattern = async (o: Origin, rule: FaultRule) => {
      o.reset();
      o.addFault(rule);
      let s = '';
      for (let i = 0; i < 24; i++) {
        const res = await get(`${o.url}/index.m3u8`);
        await res.body.dump();
        s += res.statusCode === 500 ? 'x' : '.';
      }
      return s;
    };
    const rule: FaultRule = { status: 500, probability: 0.5 };
    const again = await startOrigin({ root: dir, seed: 7 });
    const other = await startOrigin({ root: dir, seed: 8 });
    try {
      const first = await pattern(origin, rule);
      assert.equal(await pattern(again, rule), first);
      assert.equal(await pattern(origin, rule), first, 'reset() restarts the sequence');
      assert.notEqual(await pattern(other, rule), first);
      const fails = first.split('x').length - 1;
      assert.ok(fails > 4 && fails < 20, first);
    } finally {
      await again.close();
      await other.close();
    }
  });

  test('close() ends stalled and throttled requests at once', async () => {
    const o = await startOrigin({ root: dir });
    o.faults(
      { match: '/index.m3u8', stall: { ms: Number.POSITIVE_INFINITY, beforeHeaders: true } },
      { match: /stall$/, stall: { ms: Number.POSITIVE_INFINITY, afterBytes: 100 } },
      { match: /slow$/, throttleBytesPerSec: 1_000 },
    );
    const pending = ['/index.m3u8', '/data.ts?stall', '/data.ts?slow'].map((p) => rawGet(`${o.url}${p}`));
    while (o.requests.length < 3) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await o.close();
    const results = await Promise.all(pending);
    assert.ok(Date.now() - t0 < 1_000, `close took ${Date.now() - t0} ms`);
    assert.ok(
      results.every((r) => !r.complete),
      JSON.stringify(results),
    );
    assert.equal(results[1]?.bytes, 100);
  });
});
