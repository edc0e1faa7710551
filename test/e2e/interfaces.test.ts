import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { JobResponse } from '../../src/api/schemas.js';
import { gabe } from '../helpers/cli.js';
import {
  type HlsMasterFixture,
  type Mp4Fixture,
  makeHlsMaster,
  makeHlsTs,
  makeMp4,
} from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

interface SseEvent {
  event: string;
  data: JobResponse;
}

/** Reads an SSE stream into events until `until` says stop or the server closes it. */
async function readSse(
  url: string,
  until: (events: SseEvent[]) => boolean,
  headers: Record<string, string> = {},
  onHeaders?: () => void,
): Promise<{ events: SseEvent[]; closedByServer: boolean }> {
  const res = await request(url, { headers: { accept: 'text/event-stream', ...headers }, bodyTimeout: 0 });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /text\/event-stream/);
  onHeaders?.();
  const events: SseEvent[] = [];
  let buffer = '';
  for await (const chunk of res.body) {
    buffer += (chunk as Buffer).toString();
    let i = buffer.indexOf('\n\n');
    while (i !== -1) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      const event = /^event: ?(.*)$/m.exec(block)?.[1];
      const data = /^data: ?(.*)$/m.exec(block)?.[1];
      if (event && data) events.push({ event, data: JSON.parse(data) as JobResponse });
      i = buffer.indexOf('\n\n');
    }
    if (until(events)) {
      res.body.destroy();
      return { events, closedByServer: false };
    }
  }
  return { events, closedByServer: true };
}

/** A webhook receiver on loopback that records every delivery and can fail the first ones. */
async function startReceiver(failFirst = 0) {
  const deliveries: { headers: http.IncomingHttpHeaders; body: string; at: number }[] = [];
  let seen = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen++;
      if (seen <= failFirst) {
        res.writeHead(503).end();
        return;
      }
      deliveries.push({ headers: req.headers, body, at: Date.now() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    deliveries,
    attempts: () => seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('interfaces: SSE, file delivery, probe, metrics, webhooks, CLI client', () => {
  let origin: Origin;
  let master: HlsMasterFixture;
  let mp4: Mp4Fixture;
  let svc: TestService;

  before(async () => {
    origin = await startOrigin();
    master = await makeHlsMaster();
    mp4 = await makeMp4({ seconds: 2 });
    origin.serveDir('/m/', master.dir);
    origin.addFile('/v.mp4', mp4.file);
    svc = await startTestService(
      { max_jobs_per_ip: 0, webhook_secret: 'a-very-secret-value-1234', rate_limit_per_minute: 0 },
      { listen: true },
    );
  });
  afterEach(() => origin.reset());
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  const submit = async (route: string, body: Record<string, unknown>): Promise<JobResponse> => {
    const res = await request(`${svc.url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.body.json()) as JobResponse;
    assert.equal(res.statusCode, 200, JSON.stringify(json));
    return json;
  };

  it('streams a job over SSE: current state first, every transition, throttled progress, then closes', async () => {
    const ts = await makeHlsTs({ seconds: 12, segmentSeconds: 1 });
    origin.serveDir('/slow/', ts.dir);
    origin.addFault({ match: /\/slow\/.*\.ts$/, latencyMs: 120 });
    const job = await submit('/download/', {
      url: `${origin.url}/slow/${ts.playlistName}`,
      use_multithreading: false,
    });
    const { events, closedByServer } = await readSse(`${svc.url}/job/${job.job_id}/events`, () => false);
    assert.ok(closedByServer, 'the stream ends after the final state');
    assert.ok(events.every((e) => e.event === 'job' && e.data.job_id === job.job_id));
    assert.equal(events.at(-1)!.data.status, 'COMPLETED');
    const progress = events.filter((e) => e.data.status === 'PROCESSING');
    assert.ok(progress.length >= 3, `${progress.length} progress events`);
    const segs = progress.map((e) => e.data.downloaded_segments);
    assert.deepEqual(
      segs,
      [...segs].sort((a, b) => a - b),
      'progress never goes backwards',
    );
    assert.ok(progress.length <= 4 * 12 + 4, 'at most ~4 events a second');

    // A client that connects after the end gets the final state and an immediate close.
    const late = await readSse(`${svc.url}/job/${job.job_id}/events`, () => false);
    assert.equal(late.events.length, 1);
    assert.equal(late.events[0]!.data.status, 'COMPLETED');
    assert.ok(late.closedByServer);
  });

  it('streams every job on /events, starting with the jobs in progress', async () => {
    origin.addFault({ match: '/v.mp4', latencyMs: 400 });
    const first = await submit('/download/mp4', { url: `${origin.url}/v.mp4`, video_name: 'sse-a' });
    const stream = readSse(
      `${svc.url}/events`,
      (events) =>
        [first.job_id].every((id) =>
          events.some((e) => e.data.job_id === id && e.data.status === 'COMPLETED'),
        ) && events.some((e) => e.data.video_name === 'sse-b' && e.data.status === 'COMPLETED'),
    );
    await new Promise((r) => setTimeout(r, 100));
    await submit('/download/mp4', { url: `${origin.url}/v.mp4`, video_name: 'sse-b' });
    const { events } = await stream;
    assert.equal(events[0]!.data.job_id, first.job_id, 'the job already running comes first');
    const statuses = events.filter((e) => e.data.video_name === 'sse-b').map((e) => e.data.status);
    assert.equal(statuses[0], 'PENDING');
    assert.ok(statuses.includes('PROCESSING'));
  });

  it('opens /events as an event stream at once when no job is running, then sends the jobs that come', async () => {
    // Nothing pending or processing: the stream must still be committed as text/event-stream before
    // any event, or a browser's EventSource drops it (it did, with an empty text/plain 200).
    let stream: Promise<{ events: SseEvent[]; closedByServer: boolean }> | undefined;
    const connected = new Promise<void>((resolve) => {
      stream = readSse(
        `${svc.url}/events`,
        (events) => events.some((e) => e.data.video_name === 'sse-late' && e.data.status === 'COMPLETED'),
        {},
        resolve,
      );
    });
    await connected;
    await submit('/download/mp4', { url: `${origin.url}/v.mp4`, video_name: 'sse-late' });
    const { events, closedByServer } = await stream!;
    assert.equal(closedByServer, false);
    assert.equal(events[0]!.data.status, 'PENDING');
  });
  it('caps open event streams per client and in total with 503 JSON and Retry-After; a closed stream frees its slot', async () => {
    origin.addFault({ match: '/held.mp4', stall: { ms: 60_000, beforeHeaders: true } });
    // Clients told apart by the address the proxy (this process, 127.0.0.1) saw.
    const capped = await startTestService(
      {
        max_jobs_per_ip: 0,
        rate_limit_per_minute: 0,
        trust_proxy: ['127.0.0.1'],
        max_event_streams: 3,
        max_event_streams_per_client: 2,
        connection_timeout: 30,
      },
      { listen: true },
    );
    const held = await request(`${capped.url}/download/mp4`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${origin.url}/held.mp4` }),
    });
    const job = (await held.body.json()) as JobResponse;
    const open = (path: string, client: string) =>
      new Promise<{
        status: number;
        headers: http.IncomingHttpHeaders;
        body: Promise<string>;
        close(): void;
      }>((resolve, reject) => {
        const req = http.get(
          `${capped.url}${path}`,
          { agent: false, headers: { accept: 'text/event-stream', 'x-forwarded-for': client } },
          (res) => {
            const body = new Promise<string>((done) => {
              let text = '';
              res.on('data', (d) => {
                text += d;
              });
              res.on('end', () => done(text));
              res.on('close', () => done(text));
            });
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, close: () => req.destroy() });
          },
        );
        req.on('error', reject);
      });
    const refused = async (path: string, client: string, why: RegExp) => {
      const res = await open(path, client);
      assert.equal(res.status, 503, `${path} for ${client}`);
      assert.ok(Number(res.headers['retry-after']) > 0, 'Retry-After');
      const body = JSON.parse(await res.body);
      assert.equal(body.code, 'GABE_ERR_STREAMS_FULL');
      assert.match(body.detail, why);
    };
    const a1 = await open('/events', '203.0.113.1');
    const a2 = await open(`/job/${job.job_id}/events`, '203.0.113.1');
    assert.deepEqual([a1.status, a2.status], [200, 200]);
    await refused('/events', '203.0.113.1', /max_event_streams_per_client/);
    await refused(`/job/${job.job_id}/events`, '203.0.113.1', /max_event_streams_per_client/);
    const b1 = await open('/events', '203.0.113.2');
    assert.equal(b1.status, 200, 'another client has slots of its own');
    await refused('/events', '203.0.113.2', /max_event_streams\b/);
    await refused('/events', '203.0.113.3', /max_event_streams\b/);
    a1.close();
    // The server learns of the close from the socket: poll until the slot is back.
    const deadline = Date.now() + 10_000;
    let again = await open('/events', '203.0.113.3');
    while (again.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      again = await open('/events', '203.0.113.3');
    }
    assert.equal(again.status, 200, 'a closed stream frees its slot');
    for (const s of [a2, b1, again]) s.close();
  });

  it('serves the finished file with Range, ETag and a Content-Disposition naming the video', async () => {
    const job = await submit('/download/mp4', { url: `${origin.url}/v.mp4`, video_name: 'Clip – été' });
    const done = await svc.waitFor(job.job_id, ['COMPLETED']);
    const full = await request(`${svc.url}/job/${job.job_id}/file`);
    const bytes = Buffer.from(await full.body.arrayBuffer());
    assert.equal(full.statusCode, 200);
    assert.ok(bytes.equals(readFileSync(done.result!.output_path)));
    assert.equal(mediaIdentity(bytes), mediaIdentity(mp4.file));
    assert.equal(full.headers['content-type'], 'video/mp4');
    assert.match(
      String(full.headers['content-disposition']),
      /^attachment; filename="Clip _ _t_\.mp4"; filename\*=UTF-8''Clip%20%E2%80%93%20%C3%A9t%C3%A9\.mp4$/,
    );
    const etag = String(full.headers['etag']);
    const part = await request(`${svc.url}/job/${job.job_id}/file`, { headers: { range: 'bytes=100-199' } });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes 100-199/${done.result!.file_size_bytes}`);
    assert.ok(Buffer.from(await part.body.arrayBuffer()).equals(bytes.subarray(100, 200)));
    const cached = await request(`${svc.url}/job/${job.job_id}/file`, { headers: { 'if-none-match': etag } });
    await cached.body.dump();
    assert.equal(cached.statusCode, 304);
    const bad = await request(`${svc.url}/job/${job.job_id}/file`, {
      headers: { range: 'bytes=999999999-' },
    });
    await bad.body.dump();
    assert.equal(bad.statusCode, 416);
  });

  it('probes a master playlist: variants with estimated sizes, renditions, duration, encryption, live', async () => {
    const res = await request(`${svc.url}/probe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${origin.url}/m/${master.masterName}` }),
    });
    const p = (await res.body.json()) as {
      kind: string;
      variants: { resolution: string; bandwidth: number; estimated_size_bytes: number }[];
      duration_seconds: number;
      live: boolean;
      encrypted: boolean;
    };
    assert.equal(res.statusCode, 200, JSON.stringify(p));
    assert.equal(p.kind, 'master');
    assert.deepEqual(
      p.variants.map((v) => v.resolution),
      master.variants.map((v) => v.resolution),
    );
    assert.ok(Math.abs(p.duration_seconds - master.variants[0]!.duration) < 0.01);
    for (const v of p.variants) assert.ok(v.estimated_size_bytes > 0);
    assert.equal(p.live, false);
    assert.equal(p.encrypted, false);

    const mp4Probe = await request(`${svc.url}/probe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${origin.url}/v.mp4` }),
    });
    const m = (await mp4Probe.body.json()) as {
      kind: string;
      mp4: { size_bytes: number; accepts_ranges: boolean };
    };
    assert.equal(m.kind, 'mp4');
    assert.equal(m.mp4.size_bytes, mp4.size);
    assert.equal(m.mp4.accepts_ranges, true);
  });

  it('exports Prometheus metrics: jobs by state, queue depth, bytes, retries, durations', async () => {
    origin.addFault({ match: '/v.mp4', status: 503, times: 1 });
    const job = await submit('/download/mp4', { url: `${origin.url}/v.mp4` });
    await svc.waitFor(job.job_id, ['COMPLETED']);
    const res = await request(`${svc.url}/metrics`);
    const text = await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/plain/);
    assert.match(text, /^gabe_jobs\{state="COMPLETED"\} [1-9]\d*$/m);
    assert.match(text, /^gabe_queue_depth 0$/m);
    assert.match(text, /^gabe_retries_total [1-9]\d*$/m);
    assert.match(text, /^gabe_downloaded_bytes_total [1-9]\d*$/m);
    assert.match(text, /^gabe_job_duration_seconds_count\{type="mp4",state="COMPLETED"\} [1-9]\d*$/m);
    assert.match(text, /^gabe_download_speed_bytes_per_second /m);
    assert.match(text, /^gabe_process_resident_memory_bytes /m);
  });

  it('POSTs a signed webhook on the final state, retrying a failing receiver', async () => {
    const receiver = await startReceiver(2);
    try {
      const job = await submit('/download/mp4', { url: `${origin.url}/v.mp4`, callback_url: receiver.url });
      await svc.waitFor(job.job_id, ['COMPLETED']);
      const deadline = Date.now() + 20_000;
      while (receiver.deliveries.length === 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(receiver.deliveries.length, 1);
      assert.equal(receiver.attempts(), 3, 'two failures, then delivered');
      const d = receiver.deliveries[0]!;
      const body = JSON.parse(d.body) as JobResponse;
      assert.equal(body.job_id, job.job_id);
      assert.equal(body.status, 'COMPLETED');
      assert.equal(d.headers['x-gabe-event'], 'job.completed');
      const expected = createHmac('sha256', 'a-very-secret-value-1234')
        .update(`${d.headers['x-gabe-timestamp']}.${d.body}`)
        .digest('hex');
      assert.equal(d.headers['x-gabe-signature'], `sha256=${expected}`);
    } finally {
      await receiver.close();
    }
  });

  it('refuses a callback_url into a private network unless allowed', async () => {
    const guarded = await startTestService({ allow_private_networks: false });
    const res = await guarded.app.inject({
      method: 'POST',
      url: '/download/mp4',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        url: 'https://example.com/a.mp4',
        callback_url: 'http://169.254.169.254/latest',
      }),
    });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().code, 'GABE_ERR_FORBIDDEN_DESTINATION');
    await guarded.close();
  });

  it('drives a running service from the CLI: submit --follow, jobs, status, cancel', async () => {
    const env = { GABE_SERVER: svc.url };
    const submitRun = gabe(
      ['submit', `${origin.url}/m/${master.masterName}`, '--resolution', 'worst', '--follow'],
      env,
    );
    assert.equal(await submitRun.exit, 0, submitRun.output());
    const line = submitRun.stdout().trim();
    assert.match(line, /^[0-9a-f-]{36} +hls +COMPLETED +\//);
    const id = line.split(/\s+/)[0]!;

    const jobs = gabe(['jobs', '--status', 'COMPLETED'], env);
    assert.equal(await jobs.exit, 0, jobs.output());
    assert.match(jobs.stdout(), new RegExp(id));

    const status = gabe(['status', id, '--json'], env);
    assert.equal(await status.exit, 0);
    assert.equal(
      (JSON.parse(status.stdout()) as JobResponse).result?.resolution,
      master.variants[0]!.resolution,
    );

    const cancel = gabe(['cancel', id], { GABE_SERVER: svc.url });
    assert.equal(await cancel.exit, 0);
    const gone = gabe(['status', id], env);
    assert.equal(await gone.exit, 1);
    assert.match(gone.stderr(), /not found \(HTTP 404\) \[GABE_ERR_JOB_NOT_FOUND\]/);

    const mp4Run = gabe(['submit', `${origin.url}/v.mp4`, '--mp4', '--server', svc.url]);
    assert.equal(await mp4Run.exit, 0, mp4Run.output());
    assert.match(mp4Run.stdout().trim(), /^[0-9a-f-]{36}$/);
  });
});
