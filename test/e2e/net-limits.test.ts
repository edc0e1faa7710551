/**
 * The limits every transport puts on an origin (src/net/deadlines.ts), proved on all three of them
 * against raw TCP origins that misbehave on purpose: H1Transport (whole bodies: segments, playlists,
 * keys), node:http (streamed bodies: MP4 downloads) and undici (everything, when a proxy is set; here
 * through a real CONNECT proxy on loopback). Each hostile answer must end the request by itself with
 * the right error: GABE_ERR_PROTOCOL (retryable) for what breaks HTTP/1.1, GABE_ERR_TIMEOUT (retryable)
 * naming the limit for what is too slow.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HttpClient } from '../../src/net/client.js';
import { speedVerdict, transferLimits } from '../../src/net/deadlines.js';
import { loadConfig } from '../../src/service/config.js';
import { type GabeError, toGabeError } from '../../src/service/errors.js';
import { HOSTILE, type HostileAnswer } from '../helpers/hostile-answers.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { drip, type RawServer, rawServer, requestPath } from '../helpers/raw-server.js';
import { tempDir } from '../helpers/tmp.js';

/** The deadlines these tests run with: short, so each case ends in a second or two. */
const LIMITS = { timeoutMs: 1000, lowSpeedLimit: 1000, lowSpeedTimeMs: 1000 };

type Transport = 'h1' | 'native' | 'undici';
const TRANSPORTS: Transport[] = ['h1', 'native', 'undici'];

/** Rejects when `p` has not settled within `ms`: a request that never ends fails the test instead. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the request did not end within ${ms} ms`)), ms);
    }),
  ]);
}

function answer(socket: net.Socket, path: string): void {
  const name = path.slice(1);
  if (name in HOSTILE) {
    HOSTILE[name as HostileAnswer](socket);
    return;
  }
  if (name === 'slow-but-working') {
    // 20 KB/s for about 2.5 s: slow, but above the floor.
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n');
    void drip(socket, Buffer.alloc(50_000, 0x47), 20_000);
    return;
  }
  socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
}

// Every case side by side (the transports' describes inherit the concurrency): each mostly waits out
// a 1 s deadline on its own client and connection; they share only the stateless origin and the proxy.
describe('every transport ends a hostile answer by itself, with a clear error', { concurrency: true }, () => {
  let srv: RawServer;
  let proxy: TestProxy;
  const clients: HttpClient[] = [];

  before(async () => {
    srv = await rawServer((socket, request) => answer(socket, requestPath(request)));
    proxy = await startProxy();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.destroy()));
    await proxy.close();
    await srv.close();
  });

  /** Fetches `path` whole the way a job does on `transport`. */
  async function fetchWith(transport: Transport, path: string): Promise<Buffer> {
    const http = new HttpClient({
      ...LIMITS,
      allowPrivateNetworks: true,
      proxy: transport === 'undici' ? proxy.url : null,
    });
    clients.push(http);
    const url = `${srv.url}${path}`;
    if (transport !== 'native') return (await http.getBuffer(url)).data;
    // MP4 downloads: Node's client, the body streamed.
    const res = await http.get(url);
    const chunks: Buffer[] = [];
    try {
      for await (const c of res.body) chunks.push(c as Buffer);
    } catch (err) {
      throw toGabeError(err);
    }
    return Buffer.concat(chunks);
  }

  async function expectFailure(
    transport: Transport,
    path: string,
    code: 'GABE_ERR_PROTOCOL' | 'GABE_ERR_TIMEOUT',
    message: RegExp,
    endsWithinMs = 6000,
  ): Promise<void> {
    const t0 = performance.now();
    await assert.rejects(within(endsWithinMs, fetchWith(transport, path)), (err: GabeError) => {
      assert.equal(err.code, code, `${transport} ${path}: ${err.code} ${err.message}`);
      assert.equal(err.retryable, true, `${transport} ${path}: retryable`);
      assert.match(err.message, message, `${transport} ${path}`);
      return true;
    });
    assert.ok(performance.now() - t0 < endsWithinMs);
  }

  for (const t of TRANSPORTS) {
    describe(t, () => {
      it('cuts off an endless flood of 100 Continue heads', async () => {
        // undici refuses the first 100 Continue (none was asked for); the others stop at 10.
        await expectFailure(t, '/continue-flood', 'GABE_ERR_PROTOCOL', /interim \(1xx\)|bad response/);
      });

      it('cuts off an endless flood of 103 Early Hints', async () => {
        await expectFailure(t, '/hints-flood', 'GABE_ERR_PROTOCOL', /more than 10 interim \(1xx\)/);
      });

      it('counts interim responses toward the 64 KB header limit', async () => {
        await expectFailure(t, '/interim-bytes', 'GABE_ERR_PROTOCOL', /header|65536/i);
      });

      it('fails a head that keeps dripping past the head deadline, naming that limit', async () => {
        await expectFailure(t, '/head-drip', 'GABE_ERR_TIMEOUT', /response head/);
      });

      it('caps an endless trailer section', async () => {
        await expectFailure(t, '/trailer-flood', 'GABE_ERR_PROTOCOL', /header|trailer/i);
      });

      it('fails a trailer section that keeps dripping', async () => {
        await expectFailure(t, '/trailer-drip', 'GABE_ERR_TIMEOUT', /trailer|below 1000 bytes\/s|body/i);
      });

      it('fails a body that stays below the speed floor, naming the floor', async () => {
        await expectFailure(t, '/slow-body', 'GABE_ERR_TIMEOUT', /below 1000 bytes\/s for 1 s/);
      });

      it('lets a slow body above the speed floor finish', async () => {
        const data = await within(15_000, fetchWith(t, '/slow-but-working'));
        assert.equal(data.length, 50_000);
      });

      it('reports what is not HTTP as the origin breaking the protocol', async () => {
        await expectFailure(t, '/not-http', 'GABE_ERR_PROTOCOL', /HTTP/);
      });

      it('reports an invalid chunk size mid-body as the origin breaking the protocol', async () => {
        await expectFailure(t, '/bad-chunk', 'GABE_ERR_PROTOCOL', /chunk/i);
      });

      it('reports a head over the 64 KB limit as the origin breaking the protocol', async () => {
        await expectFailure(t, '/huge-head', 'GABE_ERR_PROTOCOL', /header/i);
      });
    });
  }
});

describe('protocol errors are the origin fault, not ours', () => {
  it('maps the parser errors of all three transports to GABE_ERR_PROTOCOL (502, retryable)', () => {
    const thrown = [
      Object.assign(new Error('Parse Error: Expected HTTP/'), { code: 'HPE_INVALID_CONSTANT' }),
      Object.assign(new Error('Headers Overflow Error'), { code: 'UND_ERR_HEADERS_OVERFLOW' }),
      Object.assign(new Error('bad response'), { code: 'UND_ERR_SOCKET' }),
      // undici 7's HTTPParserError: its code is undefined (see service/errors.ts).
      Object.assign(new Error('Response does not match the HTTP/1.1 protocol'), {
        name: 'HTTPParserError',
        code: undefined,
      }),
    ];
    for (const raw of thrown) {
      const err = toGabeError(raw);
      assert.equal(err.code, 'GABE_ERR_PROTOCOL', raw.message);
      assert.equal(err.httpStatus, 502);
      assert.equal(err.retryable, true);
    }
    // A socket that merely closed stays a network error.
    const reset = toGabeError(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
    assert.equal(reset.code, 'GABE_ERR_NETWORK');
  });
});

describe('the speed floor (pure)', () => {
  const floor = { limit: 1000, timeMs: 2000 };

  it('fails a window that averaged below the floor, keeps one above it, and waits for a whole window', () => {
    const window = { start: 0, bytes: 0 };
    assert.equal(speedVerdict(window, 1999, 0, floor), 'wait');
    assert.equal(speedVerdict(window, 2000, 1999, floor), 'fail');
    assert.equal(speedVerdict(window, 2000, 2000, floor), 'next');
    assert.equal(speedVerdict({ start: 5000, bytes: 10_000 }, 7500, 12_000, floor), 'fail');
    assert.equal(speedVerdict({ start: 5000, bytes: 10_000 }, 7500, 12_600, floor), 'next');
  });

  it('is off when low_speed_limit is 0', () => {
    assert.equal(speedVerdict({ start: 0, bytes: 0 }, 60_000, 0, { limit: 0, timeMs: 2000 }), 'wait');
  });

  it('takes its numbers from the configuration, with defaults that spare a slow but working origin', () => {
    const config = loadConfig({ file: path.join(tempDir(), 'config.json'), env: {} });
    assert.deepEqual(transferLimits(config), {
      timeoutMs: 10_000,
      lowSpeedLimit: 1024,
      lowSpeedTimeMs: 30_000,
    });
  });
});
