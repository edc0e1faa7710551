/**
 * H1Transport (src/net/transports/h1-transport.ts), the HTTP/1.1 client behind every whole-body fetch, against a raw TCP
 * server on loopback that writes exactly the bytes each test needs: framing (length, chunked, close),
 * responses split at every byte, keep-alive reuse, a connection the server closed while idle, and
 * timeouts, aborts, oversized bodies and the destination guard.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HttpClient } from '../../src/net/client.js';
import type { GabeError } from '../../src/service/errors.js';
import { rawServer, requestPath, trickle } from '../helpers/raw-server.js';

const client = (timeoutMs = 5000) =>
  new HttpClient({ timeoutMs, allowPrivateNetworks: true, connections: 4 });

describe('H1Transport: whole bodies over HTTP/1.1', () => {
  const payload = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
  let srv: Awaited<ReturnType<typeof rawServer>>;

  before(async () => {
    srv = await rawServer((socket, request) => {
      const path = (request.split(' ')[1] ?? '').split('?')[0];
      if (path === '/length') {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${payload.length}\r\n\r\n`);
        socket.write(payload);
      } else if (path === '/chunked') {
        const parts = [payload.subarray(0, 1000), payload.subarray(1000, 1001), payload.subarray(1001)];
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        for (const p of parts)
          socket.write(
            Buffer.concat([Buffer.from(`${p.length.toString(16)};ext=1\r\n`), p, Buffer.from('\r\n')]),
          );
        socket.write('0\r\nx-trailer: yes\r\n\r\n');
      } else if (path === '/trickle') {
        void trickle(
          socket,
          Buffer.concat([
            Buffer.from(
              'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\n\r\n',
            ),
            Buffer.from('a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n'),
          ]),
        );
      } else if (path === '/close') {
        socket.end(Buffer.concat([Buffer.from('HTTP/1.0 200 OK\r\n\r\n'), payload]));
      } else if (path === '/short') {
        socket.end(
          Buffer.concat([
            Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${payload.length}\r\n\r\n`),
            payload.subarray(0, 100),
          ]),
        );
      } else if (path === '/redirect') {
        socket.write('HTTP/1.1 302 Found\r\nLocation: /length\r\nContent-Length: 5\r\n\r\nmoved');
      } else if (path === '/silent') {
        // no answer at all
      } else if (path === '/big') {
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        const block = Buffer.alloc(4096, 1);
        for (let i = 0; i < 8; i++)
          socket.write(Buffer.concat([Buffer.from('1000\r\n'), block, Buffer.from('\r\n')]));
      } else if (path === '/garbage') {
        socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
      } else if (path === '/status-99') {
        socket.end('HTTP/1.1 099 Odd\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      } else {
        socket.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      }
    });
  });
  after(() => srv.close());

  it('reads a Content-Length body into one buffer', async () => {
    const http = client();
    const { chunks, length } = await http.getChunks(`${srv.url}/length`);
    assert.equal(chunks.length, 1);
    assert.equal(length, payload.length);
    assert.ok(chunks[0]!.equals(payload));
    await http.destroy();
  });

  it('decodes chunked bodies with chunk extensions and trailers', async () => {
    const http = client();
    const { data } = await http.getBuffer(`${srv.url}/chunked`);
    assert.ok(data.equals(payload));
    await http.destroy();
  });

  it('parses a response cut at every byte, skipping a 100 Continue before it', async () => {
    const http = client();
    const { data, res } = await http.getBuffer(`${srv.url}/trickle`);
    assert.equal(data.toString(), '0123456789abc');
    assert.equal(res.headers['content-type'], 'video/mp2t');
    await http.destroy();
  });

  it('reads an HTTP/1.0 body delimited by the end of the connection', async () => {
    const http = client();
    const { data } = await http.getBuffer(`${srv.url}/close`);
    assert.ok(data.equals(payload));
    await http.destroy();
  });

  it('fails a body shorter than its Content-Length, retryably, instead of passing it on', async () => {
    const http = client();
    await assert.rejects(
      http.getBuffer(`${srv.url}/short`),
      (err: { code?: string; retryable?: boolean }) => {
        assert.equal(err.retryable, true);
        return true;
      },
    );
    await http.destroy();
  });

  it('follows a redirect on the same kept-alive connection', async () => {
    const before = srv.conns.length;
    const http = client();
    const { data, res } = await http.getBuffer(`${srv.url}/redirect`);
    assert.ok(data.equals(payload));
    assert.equal(res.url, `${srv.url}/length`);
    assert.equal(srv.conns.length - before, 1, 'one connection for both requests');
    for (let i = 0; i < 5; i++) await http.getBuffer(`${srv.url}/length`);
    assert.equal(srv.conns.length - before, 1, 'kept alive for the next ones too');
    await http.destroy();
  });

  it('refuses a chunked body larger than the limit', async () => {
    const http = client();
    await assert.rejects(http.getBuffer(`${srv.url}/big`, { maxBytes: 10_000 }), /larger than 10000 bytes/);
    await http.destroy();
  });

  it('times out a server that never answers, and a request can be aborted', async () => {
    const http = client(300);
    await assert.rejects(http.getBuffer(`${srv.url}/silent`), (err: { code?: string }) => {
      assert.equal(err.code, 'GABE_ERR_TIMEOUT');
      return true;
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(
      http.getBuffer(`${srv.url}/silent`, { signal: ac.signal }),
      (err: { code?: string }) => {
        assert.equal(err.code, 'GABE_ERR_CANCELLED');
        return true;
      },
    );
    await http.destroy();
  });

  it('refuses what is not an HTTP response, as the origin breaking the protocol (retryable)', async () => {
    const http = client();
    await assert.rejects(http.getBuffer(`${srv.url}/garbage`), (err: GabeError) => {
      assert.match(err.message, /not an HTTP\/1\.x response/);
      assert.equal(err.code, 'GABE_ERR_PROTOCOL');
      assert.equal(err.retryable, true);
      return true;
    });
    await http.destroy();
  });

  it('refuses a status below 100 instead of waiting for a final response after it', async () => {
    const http = client();
    await assert.rejects(http.getBuffer(`${srv.url}/status-99`), (err: GabeError) => {
      assert.equal(err.code, 'GABE_ERR_PROTOCOL');
      assert.match(err.message, /invalid status 099/);
      return true;
    });
    await http.destroy();
  });

  it('sends the request line, Host and the headers it was given', async () => {
    const http = new HttpClient({
      timeoutMs: 5000,
      allowPrivateNetworks: true,
      headers: { referer: 'https://example.com/' },
    });
    await http.getBuffer(`${srv.url}/length?token=abc`, { range: { start: 10, end: 19 } });
    const request = srv.conns.at(-1)!.requests.at(-1)!;
    const lines = request.split('\r\n');
    assert.equal(lines[0], 'GET /length?token=abc HTTP/1.1');
    assert.ok(lines.includes(`host: ${new URL(srv.url).host}`));
    assert.ok(lines.includes('range: bytes=10-19'));
    assert.ok(lines.includes('referer: https://example.com/'));
    await http.destroy();
  });
});

describe('H1Transport: a kept-alive connection the server closed', () => {
  it('sends the request again on a new connection when nothing of the answer came', async () => {
    let served = 0;
    const srv = await rawServer((socket) => {
      served++;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      // Like an idle timeout on the server: the connection closes right after its first response.
      setTimeout(() => socket.destroy(), 20);
    });
    const http = client();
    assert.equal((await http.getBuffer(`${srv.url}/a`)).data.toString(), 'ok');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await http.getBuffer(`${srv.url}/b`)).data.toString(), 'ok');
    assert.equal(served, 2);
    assert.equal(srv.conns.length, 2);
    await http.destroy();
    await srv.close();
  });

  it('does not send a request twice when the server closed it after answering part of it', async () => {
    let served = 0;
    const srv = await rawServer((socket) => {
      served++;
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly');
    });
    const http = client();
    await assert.rejects(http.getBuffer(`${srv.url}/a`));
    assert.equal(served, 1);
    await http.destroy();
    await srv.close();
  });
});

describe('H1Transport: framing and connection reuse (RFC 9112)', () => {
  const chunked = (text: string) => `${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`;

  it('closes the connection after a response with both Transfer-Encoding and Content-Length (6.3)', async () => {
    const srv = await rawServer((socket) => {
      // The Content-Length is a lie a smuggling attempt would tell; chunked framing wins.
      socket.write(
        `HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n${chunked('hello')}`,
      );
    });
    const http = client();
    assert.equal((await http.getBuffer(`${srv.url}/a`)).data.toString(), 'hello');
    assert.equal((await http.getBuffer(`${srv.url}/b`)).data.toString(), 'hello');
    assert.equal(srv.conns.length, 2, 'the second request went out on a new connection');
    await http.destroy();
    await srv.close();
  });

  it('reads "gzip, chunked" as chunked and reuses the connection; "chunked, gzip" until the close (6.3 rule 4)', async () => {
    const srv = await rawServer((socket, request) => {
      if (requestPath(request) === '/last') {
        socket.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${chunked('hello')}`);
      } else {
        // chunked is not the final coding: the body is whatever comes until the server closes.
        socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      }
    });
    const http = client();
    assert.equal((await http.getBuffer(`${srv.url}/last`)).data.toString(), 'hello');
    assert.equal((await http.getBuffer(`${srv.url}/last`)).data.toString(), 'hello');
    assert.equal(srv.conns.length, 1, 'kept alive');
    // On the kept-alive connection, which ends with this response.
    const { data } = await http.getBuffer(`${srv.url}/not-last`);
    assert.equal(data.toString(), '5\r\nhello\r\n0\r\n\r\n');
    assert.equal((await http.getBuffer(`${srv.url}/last`)).data.toString(), 'hello');
    assert.equal(srv.conns.length, 2);
    await http.destroy();
    await srv.close();
  });

  it('does not reuse a connection left idle past the Keep-Alive timeout the server announced', async () => {
    const srv = await rawServer((socket) => {
      // The server announces 1 s but (like many) closes later, without a word: the client must not
      // send on a connection the server may be closing at that very moment.
      socket.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok');
    });
    const http = client();
    await http.getBuffer(`${srv.url}/a`);
    await http.getBuffer(`${srv.url}/b`);
    assert.equal(srv.conns.length, 1, 'reused while fresh');
    await new Promise((r) => setTimeout(r, 1100));
    await http.getBuffer(`${srv.url}/c`);
    assert.equal(srv.conns.length, 2, 'a new connection after the announced timeout');
    assert.equal(srv.conns[0]!.requests.length, 2);
    await http.destroy();
    await srv.close();
  });

  it('a request queued for a connection leaves the queue when aborted, and the next waiter still gets it', async () => {
    const srv = await rawServer((socket, request) => {
      const answer = () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      if (requestPath(request) === '/slow') setTimeout(answer, 400);
      else answer();
    });
    const http = new HttpClient({ timeoutMs: 5000, allowPrivateNetworks: true, connections: 1 });
    const t0 = performance.now();
    const events: string[] = [];
    const slow = http.getBuffer(`${srv.url}/slow`).then(() => events.push('slow done'));
    await new Promise((r) => setTimeout(r, 50));
    const ac = new AbortController();
    const aborted = http.getBuffer(`${srv.url}/fast`, { signal: ac.signal }).then(
      () => assert.fail('the aborted request was sent'),
      (err: GabeError) => {
        assert.equal(err.code, 'GABE_ERR_CANCELLED');
        events.push('aborted');
      },
    );
    const next = http.getBuffer(`${srv.url}/fast`).then((r) => {
      events.push('next done');
      return r.data.toString();
    });
    setTimeout(() => ac.abort(), 100);
    await aborted;
    assert.ok(performance.now() - t0 < 350, 'the abort took effect while the request was still queued');
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<string>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the next waiter was never woken')), 3000);
    });
    assert.equal(await Promise.race([next, bounded]), 'ok');
    clearTimeout(timer);
    await slow;
    assert.deepEqual(events, ['aborted', 'slow done', 'next done']);
    assert.equal(srv.conns.length, 1);
    assert.deepEqual(srv.conns[0]!.requests.map(requestPath), ['/slow', '/fast']);
    await http.destroy();
    await srv.close();
  });
});

describe('H1Transport: the destination guard', () => {
  it('refuses loopback at connect time when private networks are not allowed', async () => {
    const srv = await rawServer((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const http = new HttpClient({ timeoutMs: 2000, allowPrivateNetworks: false });
    await assert.rejects(http.getBuffer(`${srv.url}/x`), (err: { code?: string }) => {
      assert.equal(err.code, 'GABE_ERR_FORBIDDEN_DESTINATION');
      return true;
    });
    const named = new HttpClient({
      timeoutMs: 2000,
      allowPrivateNetworks: false,
      guard: { resolve: async () => [{ address: '127.0.0.1', family: 4 }] },
    });
    await assert.rejects(
      named.getBuffer(`http://cdn.example:${new URL(srv.url).port}/x`),
      (err: { code?: string }) => err.code === 'GABE_ERR_FORBIDDEN_DESTINATION',
    );
    assert.equal(srv.conns.length, 0, 'no connection was made');
    await http.destroy();
    await named.destroy();
    await srv.close();
  });
});

describe('H1Transport over TLS', () => {
  /** Runs `script` in a child process (the CA must be known when Node starts), against `url`. */
  function child(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve) => {
      const base = { ...process.env };
      delete base['NODE_EXTRA_CA_CERTS'];
      const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: { ...base, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      p.on('close', (code) => resolve({ code, out }));
    });
  }

  it('fetches over HTTPS with SNI and keep-alive, and refuses a certificate it does not trust', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gabe-tls-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'],
        ...['-addext', 'subjectAltName=DNS:localhost', '-keyout', key, '-out', cert],
      ],
      { stdio: 'ignore' },
    );
    const servernames: (string | false)[] = [];
    let connections = 0;
    const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      res.setHeader('content-length', '12');
      res.end(`hello ${req.url!.slice(1, 7).padEnd(6, '.')}`);
    });
    server.on('secureConnection', (s) => {
      connections++;
      servernames.push((s as unknown as { servername: string | false }).servername);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://localhost:${(server.address() as net.AddressInfo).port}`;
    const script = `
      import { HttpClient } from './src/net/client.ts';
      const http = new HttpClient({ timeoutMs: 5000, allowPrivateNetworks: true });
      try {
        const a = await http.getBuffer('${url}/first');
        const b = await http.getBuffer('${url}/second');
        console.log('OK', a.data.toString(), '|', b.data.toString());
      } catch (err) {
        console.log('ERR', err.code, err.message);
      }
      await http.destroy();
    `;
    try {
      const trusted = await child(script, { NODE_EXTRA_CA_CERTS: cert });
      assert.match(trusted.out, /OK hello first\. \| hello second/);
      assert.equal(connections, 1, 'both requests on one TLS connection');
      assert.deepEqual(servernames, ['localhost']);
      const untrusted = await child(script, {});
      assert.match(untrusted.out, /ERR GABE_ERR_NETWORK .*(self.signed|certificate)/i);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
