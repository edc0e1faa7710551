/**
 * Hostile origins, item 4 (memory): a job's memory must stay bounded whatever the segment size. The
 * origin serves segments of 128 MB: a real 2 s TS segment padded with null TS packets (PID 0x1FFF,
 * which every demuxer drops), so the download must give the very file the small segments give. The
 * same for AES-128, byte ranges (Range honoured and ignored), fMP4 (padded with a `free` box, muxed by
 * ffmpeg), a body without Content-Length, a segment cut off midway and fetched again, and a restart in
 * the middle of a large segment; and an fMP4 fragment whose 4-byte trun count claims billions of
 * samples. Each job runs in this process (the real service), so this process's
 * RSS growth is the job's.
 */
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, beforeEach, describe, it, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Job } from '../../src/jobs/types.js';
import { box, fullBox, u32be, u64be } from '../../src/media/mp4-box-writer.js';
import { H1Transport } from '../../src/net/transports/h1-transport.js';
import {
  decodedHash,
  decodedVideoHash,
  type HlsFmp4Fixture,
  type HlsMediaFixture,
  makeHlsFmp4,
  makeHlsTs,
  makeTempDir,
} from '../helpers/fixtures.js';
import { runHostileJob } from '../helpers/hostile-harness.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { startProxy } from '../helpers/proxy.js';
import { rawServer } from '../helpers/raw-server.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

const MB = 1024 * 1024;
/** Each large segment: 128 MB, what made one job peak at 1,113 MB of RSS. */
const LARGE = 128 * MB;
/** The bound asserted: the growth of this process's RSS while a job of 128 MB segments runs. */
const MAX_GROWTH_MB = 200;
const ENDS_WITHIN_MS = 240_000;

// A full collection before each job (runHostileJob calls global.gc when there is one): without it the
// memory an earlier job freed but V8 has not collected yet would hide the next job's growth.
setFlagsFromString('--expose-gc');
global.gc ??= runInNewContext('gc') as typeof global.gc;

const NULL_PACKETS = (() => {
  const packet = Buffer.alloc(188, 0xff);
  packet.set([0x47, 0x1f, 0xff, 0x10]);
  return Buffer.concat(Array.from({ length: 5577 }, () => packet)); // about 1 MB of whole packets
})();

/** `data` followed by null TS packets up to at least `size` bytes, as a stream (never whole in memory). */
async function* padded(data: Buffer, size: number): AsyncGenerator<Buffer> {
  yield data;
  for (let n = data.length; n < size; n += NULL_PACKETS.length) yield NULL_PACKETS;
}

async function writeStream(file: string, source: AsyncIterable<Buffer>, key?: Buffer, iv?: Buffer) {
  await mkdir(path.dirname(file), { recursive: true });
  const readable = Readable.from(source);
  if (key && iv) await pipeline(readable, createCipheriv('aes-128-cbc', key, iv), createWriteStream(file));
  else await pipeline(readable, createWriteStream(file));
}

interface Entry {
  uri: string;
  duration: number;
  byterange?: string;
  key?: string;
}

function playlist(entries: Entry[]) {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:4', '#EXT-X-TARGETDURATION:3'];
  for (const e of entries) {
    if (e.key) lines.push(e.key);
    lines.push(`#EXTINF:${e.duration.toFixed(6)},`);
    if (e.byterange) lines.push(`#EXT-X-BYTERANGE:${e.byterange}`);
    lines.push(e.uri);
  }
  return `${lines.join('\n')}\n#EXT-X-ENDLIST\n`;
}

/** A minimal PNG signature and IHDR chunk: what disguising CDNs put in front of each segment. */
const FAKE_PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.from('0000000d49484452000000010000000108060000001f15c489', 'hex'),
]);

const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const iv = (i: number) => Buffer.from(i.toString(16).padStart(32, '0'), 'hex');

describe('a job of 128 MB segments: memory bounded, output exact', () => {
  let origin: Origin;
  let svc: TestService;
  let ts: HlsMediaFixture;
  let fmp4: HlsFmp4Fixture;
  let dir: string;
  /** Output of the small-segment download: what every large-segment variant must give. */
  let reference: string;
  let referenceFile: string;

  before(async () => {
    ts = await makeHlsTs({ seconds: 6, segmentSeconds: 2 });
    fmp4 = await makeHlsFmp4({ seconds: 4, segmentSeconds: 2 });
    dir = await makeTempDir('hostile-memory');
    const small = await Promise.all(ts.segments.map((s) => readFile(path.join(ts.dir, s))));
    const durations = ts.segmentDurations;
    const clear = small.map((_, i) => ({ uri: `seg_${i}.ts`, duration: durations[i]! }));
    await mkdir(path.join(dir, 'small'), { recursive: true });
    await writeFile(path.join(dir, 'small/index.m3u8'), playlist(clear));
    await mkdir(path.join(dir, 'big'), { recursive: true });
    await writeFile(path.join(dir, 'big/index.m3u8'), playlist(clear));
    await mkdir(path.join(dir, 'aes'), { recursive: true });
    await writeFile(path.join(dir, 'aes/k.key'), KEY);
    await writeFile(
      path.join(dir, 'aes/index.m3u8'),
      playlist(
        clear.map((e, i) => ({
          ...e,
          key: `#EXT-X-KEY:METHOD=AES-128,URI="k.key",IV=0x${iv(i).toString('hex')}`,
        })),
      ),
    );
    let offset = 0;
    const ranges: string[] = [];
    for (const [i, data] of small.entries()) {
      await writeFile(path.join(dir, `small/seg_${i}.ts`), data);
      await writeStream(path.join(dir, `big/seg_${i}.ts`), padded(data, LARGE));
      await writeStream(path.join(dir, `aes/seg_${i}.ts`), padded(data, LARGE), KEY, iv(i));
      const size = (await stat(path.join(dir, `big/seg_${i}.ts`))).size;
      ranges.push(`${size}@${offset}`);
      offset += size;
    }
    // Byte ranges: the three large segments back to back in one file.
    await mkdir(path.join(dir, 'range'), { recursive: true });
    await writeStream(
      path.join(dir, 'range/all.ts'),
      (async function* () {
        for (let i = 0; i < small.length; i++) yield* padded(small[i]!, LARGE);
      })(),
    );
    await writeFile(
      path.join(dir, 'range/index.m3u8'),
      playlist(small.map((_, i) => ({ uri: 'all.ts', duration: durations[i]!, byterange: ranges[i]! }))),
    );
    // fMP4: each media segment followed by a 128 MB `free` box, which demuxers skip.
    await mkdir(path.join(dir, 'fmp4'), { recursive: true });
    const fmp4Text = await readFile(fmp4.playlist, 'utf8');
    await writeFile(path.join(dir, 'fmp4/index.m3u8'), fmp4Text);
    await writeFile(
      path.join(dir, 'fmp4', fmp4.initName),
      await readFile(path.join(fmp4.dir, fmp4.initName)),
    );
    for (const s of fmp4.segments) {
      const data = await readFile(path.join(fmp4.dir, s));
      const free = Buffer.alloc(8);
      free.writeUInt32BE(LARGE, 0);
      free.write('free', 4, 'latin1');
      await writeStream(
        path.join(dir, 'fmp4', s),
        (async function* () {
          yield data;
          yield free;
          const zeros = Buffer.alloc(MB);
          for (let n = 8; n < LARGE; n += MB) yield zeros.subarray(0, Math.min(MB, LARGE - n));
        })(),
      );
    }
    // fMP4 whose second fragment lists 0xFFFFFFF0 samples of the default size in a 4-byte trun count.
    await mkdir(path.join(dir, 'trun-bomb'), { recursive: true });
    await writeFile(path.join(dir, 'trun-bomb/index.m3u8'), fmp4Text);
    await writeFile(
      path.join(dir, 'trun-bomb', fmp4.initName),
      await readFile(path.join(fmp4.dir, fmp4.initName)),
    );
    for (const [i, s] of fmp4.segments.entries()) {
      const traf = box(
        'traf',
        fullBox('tfhd', 0, 0x20000 | 0x10, u32be(1, 0)),
        fullBox('tfdt', 1, 0, u64be(i * 180_000)),
        fullBox('trun', 0, 0, u32be(0xfffffff0)),
      );
      const bomb = Buffer.concat([
        box('moof', fullBox('mfhd', 0, 0, u32be(i + 1)), traf),
        box('mdat', Buffer.alloc(16)),
      ]);
      await writeFile(
        path.join(dir, 'trun-bomb', s),
        i === 1 ? bomb : await readFile(path.join(fmp4.dir, s)),
      );
    }
    // A fake PNG header in front of a large first segment (the others small); an HTML page too large
    // to hold in memory.
    await mkdir(path.join(dir, 'disguised'), { recursive: true });
    await writeStream(
      path.join(dir, 'disguised/seg_0.ts'),
      (async function* () {
        yield FAKE_PNG;
        yield* padded(small[0]!, LARGE);
      })(),
    );
    await writeFile(
      path.join(dir, 'disguised/index.m3u8'),
      playlist(clear.map((e, i) => (i === 0 ? e : { ...e, uri: `../small/${e.uri}` }))),
    );
    await mkdir(path.join(dir, 'html'), { recursive: true });
    await writeFile(
      path.join(dir, 'html/seg_0.ts'),
      `<!DOCTYPE html><html><body>${'<p>Sign in to watch</p>\n'.repeat(800_000)}</body></html>\n`,
    );
    await writeFile(path.join(dir, 'html/index.m3u8'), playlist(clear.slice(0, 1)));
    origin = await startOrigin({ root: dir });
    svc = await startTestService({}, { listen: true });
    const job = await submitAndWait(svc, { url: `${origin.url}/small/index.m3u8` });
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    referenceFile = job.result!.output_path;
    // Media identity: the jobs' URLs differ, and each is written into its file (media-identity.ts).
    reference = mediaIdentity(referenceFile);
  });

  // Every case starts without faults and counts only its own requests.
  beforeEach(() => {
    origin.reset();
  });

  after(async () => {
    await closeAllServices();
    await origin?.close();
  });

  async function submitAndWait(s: TestService, body: Record<string, unknown>): Promise<Job> {
    const res = await fetch(`${s.url}/download/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const { job_id } = (await res.json()) as { job_id: string };
    return s.waitFor(job_id, ['COMPLETED', 'FAILED', 'CANCELLED'], ENDS_WITHIN_MS);
  }

  const bounded = { endsWithinMs: ENDS_WITHIN_MS, maxRssGrowthMb: MAX_GROWTH_MB };

  /** runHostileJob with what the job cost in the test's output (the numbers the README states). */
  async function measured(t: TestContext, body: Record<string, unknown>, health = true) {
    const out = await runHostileJob(svc, body, { ...bounded, health });
    t.diagnostic(
      `RSS +${out.rssGrowthMb.toFixed(1)} MB, CPU ${Math.round(out.cpuMs)} ms, ${Math.round(out.elapsedMs)} ms, /health max ${Math.round(out.health.maxMs)} ms`,
    );
    return out;
  }

  it('downloads three 128 MB TS segments (Content-Length) into the same MP4 as the small ones, RSS growth < 200 MB', async (t) => {
    const { job } = await measured(t, { url: `${origin.url}/big/index.m3u8` });
    assert.equal(mediaIdentity(job.result!.output_path), reference, 'the same MP4 as the small segments');
  });

  it('downloads 128 MB segments sent chunked (no Content-Length) with the same bound', async (t) => {
    origin.addFault({ match: /\/big\/seg_\d\.ts$/, chunked: true });
    const { job } = await measured(t, { url: `${origin.url}/big/index.m3u8` });
    assert.equal(mediaIdentity(job.result!.output_path), reference);
  });

  it('decrypts 128 MB AES-128 segments as they stream, with the same bound', async (t) => {
    const { job } = await measured(t, { url: `${origin.url}/aes/index.m3u8` });
    assert.equal(mediaIdentity(job.result!.output_path), reference);
  });

  it('streams 128 MB AES-128 segments through an HTTP proxy (undici) with the same bound', async (t) => {
    const proxy = await startProxy();
    try {
      // The test proxy relays every byte through this process's event loop too: /health would
      // measure the proxy as much as the service.
      const body = { url: `${origin.url}/aes/index.m3u8`, proxy: proxy.url };
      const { job } = await measured(t, body, false);
      assert.ok(proxy.targets.length >= 1);
      assert.equal(mediaIdentity(job.result!.output_path), reference);
    } finally {
      await proxy.close();
    }
  });

  it('downloads 128 MB byte ranges of one file, with Range honoured and ignored (200, ranges cut out)', async (t) => {
    const honoured = await measured(t, { url: `${origin.url}/range/index.m3u8` });
    assert.equal(mediaIdentity(honoured.job.result!.output_path), reference);
    origin.addFault({ match: /\/range\/all\.ts$/, ignoreRange: true });
    const ignored = await measured(t, { url: `${origin.url}/range/index.m3u8` });
    assert.equal(mediaIdentity(ignored.job.result!.output_path), reference);
    assert.ok(origin.requests.some((r) => r.path === '/range/all.ts' && r.status === 200));
  });

  it('downloads fMP4 segments padded to 128 MB through the in-process remux, with the same bound', async (t) => {
    const { job } = await measured(t, { url: `${origin.url}/fmp4/index.m3u8` });
    assert.equal(
      await decodedVideoHash(job.result!.output_path),
      await decodedVideoHash(`${origin.url}/fmp4/index.m3u8`),
    );
    assert.equal(
      await decodedHash(job.result!.output_path, 'a'),
      await decodedHash(path.join(fmp4.dir, fmp4.playlistName), 'a'),
    );
  });

  it('cuts a fake PNG header off a 128 MB first segment as it streams (ffmpeg would take it for a picture)', async () => {
    // ffmpeg, unlike the in-process remux, probes the first bytes it is given: they must be TS.
    const viaFfmpeg = await startTestService({ native_remux: false }, { listen: true });
    // A first job warms the new service up (routes compiled, ffmpeg found), so /health measures the job.
    await submitAndWait(viaFfmpeg, { url: `${origin.url}/small/index.m3u8` });
    const { job } = await runHostileJob(viaFfmpeg, { url: `${origin.url}/disguised/index.m3u8` }, bounded);
    assert.equal(await decodedVideoHash(job.result!.output_path), await decodedVideoHash(referenceFile));
    assert.equal(await decodedHash(job.result!.output_path, 'a'), await decodedHash(referenceFile, 'a'));
  });

  it('an fMP4 fragment listing billions of samples in a 4-byte count fails the job at once, memory bounded', async () => {
    // The in-process remux refuses the fragment (it used to run this process out of memory reading
    // it); ffmpeg, given the track file instead, finds it invalid.
    await runHostileJob(
      svc,
      { url: `${origin.url}/trun-bomb/index.m3u8` },
      // The error names the damage, as the in-process remux found it.
      {
        ...bounded,
        code: 'GABE_ERR_FFMPEG',
        error: /Invalid data[\s\S]*declined first: .*more than its mdat can hold/,
      },
    );
  });

  it('fails with GABE_ERR_SEGMENT on an HTML page too large to hold where a segment belongs', async () => {
    await runHostileJob(
      svc,
      { url: `${origin.url}/html/index.m3u8` },
      { ...bounded, code: 'GABE_ERR_SEGMENT', error: /segment 0 .*is an HTML page, not media/ },
    );
  });

  it('fetches a 128 MB segment cut off halfway again, and the MP4 is still exact', async (t) => {
    const cut = origin.addFault({ match: '/big/seg_1.ts', truncate: { fraction: 0.5 }, times: 1 });
    const { job } = await measured(t, { url: `${origin.url}/big/index.m3u8` });
    assert.equal(cut.hits, 1);
    assert.equal(origin.countRequests('/big/seg_1.ts'), 2);
    assert.equal(mediaIdentity(job.result!.output_path), reference);
  });

  it('resumes after a restart in the middle of a 128 MB segment: nothing written is fetched again, the MP4 is exact', async () => {
    // Segment 0 arrives at once; segments 1 and 2 take seconds, so the restart finds one of them midway.
    // Only their first requests: after the restart, the rest may come at once.
    origin.addFault({ match: /\/big\/seg_[12]\.ts$/, throttleBytesPerSec: 24 * MB, times: 2 });
    const own = await startTestService(
      { segment_concurrency: 2, segment_concurrency_max: 2 },
      { listen: true },
    );
    global.gc?.();
    const rss0 = process.memoryUsage.rss();
    let peak = rss0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 20);
    try {
      const res = await fetch(`${own.url}/download/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: `${origin.url}/big/index.m3u8` }),
      });
      const { job_id: id } = (await res.json()) as { job_id: string };
      const checkpoint = path.join(own.dir, 'temp', id, 'video.track.json');
      const deadline = Date.now() + 60_000;
      const written = () =>
        existsSync(checkpoint)
          ? (JSON.parse(readFileSync(checkpoint, 'utf8')) as { fetches: number }).fetches
          : 0;
      while (written() < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(written(), 1, 'segment 0 is in the track file, segments 1 and 2 are not');
      const spilling = readdirSync(path.dirname(checkpoint)).filter((n) => n.includes('.spill-'));
      assert.ok(spilling.length > 0, 'a large segment is on its way to disk when the service stops');
      assert.ok(origin.requests.some((r) => r.path === '/big/seg_1.ts' && !r.completed));
      const again = await own.restart();
      const job = await again.waitFor(id, ['COMPLETED', 'FAILED', 'CANCELLED'], ENDS_WITHIN_MS);
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      assert.equal(origin.countRequests('/big/seg_0.ts'), 1, 'segment 0 was not fetched again');
      assert.equal(mediaIdentity(job.result!.output_path), reference);
    } finally {
      clearInterval(sampler);
    }
    const growth = (peak - rss0) / MB;
    assert.ok(growth < MAX_GROWTH_MB, `RSS +${Math.round(growth)} MB`);
  });
});

describe('H1Transport: a body read as a stream', () => {
  it('stops reading the socket while the reader is behind, and reuses the connection after', async () => {
    const body = Buffer.alloc(64 * MB, 7);
    const srv = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.write(body);
    });
    const transport = new H1Transport({ connections: 1, timeoutMs: 10_000, guard: null });
    try {
      const res = await transport.request(new URL(`${srv.url}/big`), { method: 'GET', headers: {} });
      const reader = res.body[Symbol.asyncIterator]();
      let got = ((await reader.next()).value as Buffer).length;
      // The reader takes its time: what the client does not read stays with the sender.
      await new Promise((r) => setTimeout(r, 1000));
      const waiting = srv.conns[0]!.socket.writableLength;
      assert.ok(waiting > 32 * MB, `only ${waiting} bytes left unread at the sender`);
      for (let r = await reader.next(); !r.done; r = await reader.next()) got += (r.value as Buffer).length;
      assert.equal(got, body.length);
      const again = await transport.request(new URL(`${srv.url}/again`), { method: 'GET', headers: {} });
      let n = 0;
      for await (const c of again.body) n += (c as Buffer).length;
      assert.equal(n, body.length);
      assert.equal(srv.conns.length, 1, 'the connection was kept alive');
    } finally {
      await transport.destroy();
      await srv.close();
    }
  });
});
