/**
 * allowed_hosts: a DNS-rebinding page reaches the service under its own name (`Host: attacker.example`)
 * and must be refused; the names the service is really reached by (the web page, the CLI, inject's
 * `localhost:80`) must keep working, and /health stays open for container probes.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, afterEach, describe, it } from 'node:test';
import { closeAllServices, startTestService } from '../helpers/service.js';

interface Answer {
  status: number;
  body: string;
}

/** A real HTTP request with the Host header a browser would send for `host`. */
function request(base: string, path: string, host: string, method = 'GET', body?: string): Promise<Answer> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent: false,
        headers: { host, ...(body ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('allowed_hosts (DNS rebinding)', () => {
  afterEach(() => closeAllServices());
  after(() => closeAllServices());

  it('bound to loopback, refuses a request for Host: attacker.example with 421 JSON on every route but /health', async () => {
    const svc = await startTestService({ max_jobs_per_ip: 0 }, { listen: true });
    const port = new URL(svc.url).port;
    for (const [method, path, body] of [
      ['GET', '/jobs'],
      ['GET', '/'],
      ['GET', '/events'],
      ['POST', '/download/mp4', JSON.stringify({ url: 'http://127.0.0.1:9/v.mp4' })],
    ] as const) {
      const res = await request(svc.url, path, `attacker.example:${port}`, method, body);
      assert.equal(res.status, 421, `${method} ${path}: ${res.body}`);
      const json = JSON.parse(res.body);
      assert.equal(json.code, 'GABE_ERR_HOST_NOT_ALLOWED');
      assert.match(json.detail, /attacker\.example.*allowed_hosts/);
    }
    assert.equal(svc.store.list({ limit: 10, offset: 0 }).total, 0, 'no job was created');
    const health = await request(svc.url, '/health', 'attacker.example');
    assert.equal(health.status, 200, 'container probes reach /health under any name');
  });

  it('bound to loopback, answers the names it is reached by: localhost, 127.0.0.1, [::1], any port, and inject', async () => {
    const svc = await startTestService({ max_jobs_per_ip: 0 }, { listen: true });
    const port = new URL(svc.url).port;
    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      `[::1]:${port}`,
      'LOCALHOST',
      'localhost.',
    ]) {
      const res = await request(svc.url, '/jobs', host);
      assert.equal(res.status, 200, `${host}: ${res.body}`);
    }
    const page = await request(svc.url, '/', `127.0.0.1:${port}`);
    assert.equal(page.status, 200, 'the web page loads');
    const injected = await svc.app.inject({ method: 'GET', url: '/jobs' });
    assert.equal(injected.statusCode, 200, 'app.inject sends Host: localhost:80');
  });

  it('with allowed_hosts set, answers only those names (case and port ignored)', async () => {
    const svc = await startTestService(
      { allowed_hosts: ['gabe.example', '192.0.2.10', '::1'] },
      { listen: true },
    );
    for (const host of ['gabe.example', 'GABE.example:8443', '192.0.2.10:80', '[::1]:1']) {
      assert.equal((await request(svc.url, '/jobs', host)).status, 200, host);
    }
    for (const host of ['localhost', 'attacker.example', 'gabe.example.attacker.example', '192.0.2.1']) {
      assert.equal((await request(svc.url, '/jobs', host)).status, 421, host);
    }
  });

  it('bound to a wildcard address, checks no Host unless allowed_hosts is set; "*" turns the check off', async () => {
    const wild = await startTestService({ host: '0.0.0.0' }, { listen: true });
    assert.equal((await request(wild.url, '/jobs', 'attacker.example')).status, 200);
    await closeAllServices();
    const star = await startTestService({ allowed_hosts: ['*'] }, { listen: true });
    assert.equal((await request(star.url, '/jobs', 'anything.example')).status, 200);
  });
});
