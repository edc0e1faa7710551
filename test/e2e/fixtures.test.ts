// Checks that the ffmpeg-made fixtures (test/helpers/fixtures.ts) are what they claim, so download tests
// can trust their facts (durations, segment counts, keys, codecs) as ground truth.
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import {
  decodedFrameCount,
  decodedHash,
  decodedVideoHash,
  durationOf,
  ffprobeJson,
  makeHlsAes,
  makeHlsByteRange,
  makeHlsDiscontinuity,
  makeHlsFmp4,
  makeHlsMaster,
  makeHlsSeparateAudio,
  makeHlsTs,
  makeMp4,
  makeTempDir,
  runFfmpeg,
  runFfprobe,
  streamsOf,
} from '../helpers/fixtures.js';

/** Build (or reuse) a fixture and report how long it took, to keep an eye on suite runtime. */
async function timed<T>(t: TestContext, build: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const fx = await build();
  t.diagnostic(`built in ${Date.now() - t0} ms`);
  return fx;
}

const near = (actual: number, expected: number, tol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} not within ${tol} of ${expected}`);

const kinds = async (input: string) =>
  (await streamsOf(input)).map((s) => `${s.codec_type}:${s.codec_name}`).sort();

/** Top-level MP4 box types in file order. */
async function topLevelBoxes(file: string): Promise<string[]> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const boxes: string[] = [];
    const head = Buffer.alloc(16);
    for (let pos = 0; pos + 8 <= size; ) {
      await fh.read(head, 0, 16, pos);
      let len = head.readUInt32BE(0);
      if (len === 1) len = Number(head.readBigUInt64BE(8));
      boxes.push(head.toString('latin1', 4, 8));
      if (len < 8) break;
      pos += len;
    }
    return boxes;
  } finally {
    await fh.close();
  }
}

/** Whether the first video packet of a file is a keyframe: a segment must be decodable on its own. */
async function startsWithKeyframe(file: string): Promise<boolean> {
  const args = [
    '-select_streams',
    'v:0',
    '-read_intervals',
    '%+#1',
    '-show_entries',
    'packet=flags',
    '-of',
    'csv=p=0',
  ];
  const out = await runFfprobe([...args, file]);
  return out.toString().trim().startsWith('K');
}

describe('fixtures', () => {
  test('makeMp4: H.264 + AAC, faststart and not', async (t) => {
    const fx = await timed(t, () => makeMp4());
    assert.deepEqual(await kinds(fx.file), ['audio:aac', 'video:h264']);
    const v = (await streamsOf(fx.file)).find((s) => s.codec_type === 'video');
    assert.equal(`${v?.width}x${v?.height}`, '320x180');
    near(fx.duration, 4, 0.1, 'duration');
    assert.match(fx.codecs, /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
    const boxes = await topLevelBoxes(fx.file);
    assert.ok(boxes.indexOf('moov') < boxes.indexOf('mdat'), boxes.join(','));

    const slow = await timed(t, () => makeMp4({ faststart: false }));
    const boxes2 = await topLevelBoxes(slow.file);
    assert.ok(boxes2.indexOf('moov') > boxes2.indexOf('mdat'), boxes2.join(','));
    assert.equal(await makeMp4(), fx, 'cached per process');
  });

  test('makeHlsTs: segments on keyframes, durations add up', async (t) => {
    const fx = await timed(t, () => makeHlsTs());
    assert.equal(fx.segmentCount, 3);
    assert.deepEqual(fx.segmentDurations, [2, 2, 2]);
    assert.equal(fx.duration, 6);
    assert.deepEqual(await kinds(fx.playlist), ['audio:aac', 'video:h264']);
    near(await durationOf(fx.playlist), 6, 0.2, 'probed duration');
    for (const seg of fx.segments) {
      const file = path.join(fx.dir, seg);
      assert.ok(await startsWithKeyframe(file), `${seg} starts with a keyframe`);
      assert.equal((await readFile(file))[0], 0x47, 'TS sync byte');
    }
    assert.equal(await decodedFrameCount(fx.playlist), 150);
  });

  test('decodedVideoHash: a -c copy remux to MP4 decodes to the same frames', async (t) => {
    const fx = await makeHlsTs();
    const out = path.join(await makeTempDir('remux'), 'ref.mp4');
    const t0 = Date.now();
    await runFfmpeg(['-i', fx.playlist, '-c', 'copy', out]);
    const [a, b] = await Promise.all([decodedVideoHash(fx.playlist), decodedVideoHash(out)]);
    t.diagnostic(`remux + 2 hashes in ${Date.now() - t0} ms`);
    assert.match(a, /^[0-9a-f]{32}$/);
    assert.equal(a, b);
    const other = await makeHlsDiscontinuity();
    assert.notEqual(await decodedVideoHash(other.playlist), a);
  });

  test('makeHlsMaster: three variants with measured BANDWIDTH and real CODECS', async (t) => {
    const fx = await timed(t, () => makeHlsMaster());
    const text = await readFile(fx.master, 'utf8');
    assert.equal(fx.variants.length, 3);
    assert.deepEqual(
      fx.variants.map((v) => v.resolution),
      ['320x180', '640x360', '960x540'],
    );
    for (const v of fx.variants) {
      assert.ok(text.includes(`BANDWIDTH=${v.bandwidth},`), `BANDWIDTH for ${v.uri}`);
      assert.ok(text.includes(`RESOLUTION=${v.resolution}`) && text.includes(`CODECS="${v.codecs}"`));
      assert.ok(text.includes(`\n${v.uri}\n`));
      const vs = (await streamsOf(v.playlist)).find((s) => s.codec_type === 'video');
      assert.equal(`${vs?.width}x${vs?.height}`, v.resolution);
      assert.equal(v.segmentCount, 3);
    }
    const bw = fx.variants.map((v) => v.bandwidth);
    assert.ok(bw[0]! < bw[1]! && bw[1]! < bw[2]!, `ascending: ${bw}`);
  });

  test('makeHlsAes explicit IV (ffmpeg): decrypts with the returned key and IV', async (t) => {
    const fx = await timed(t, () => makeHlsAes());
    assert.equal(fx.encryptedBy, 'ffmpeg');
    assert.equal(fx.key.length, 16);
    assert.deepEqual(await readFile(path.join(fx.dir, fx.keyUri)), fx.key);
    const text = await readFile(fx.playlist, 'utf8');
    assert.ok(
      text.includes(`#EXT-X-KEY:METHOD=AES-128,URI="${fx.keyUri}",IV=0x${fx.iv?.toString('hex')}`),
      text,
    );
    for (const seg of fx.segments) {
      const enc = await readFile(path.join(fx.dir, seg));
      assert.notEqual(enc[0], 0x47, 'encrypted');
      const d = createDecipheriv('aes-128-cbc', fx.key, fx.iv!);
      const plain = Buffer.concat([d.update(enc), d.final()]);
      assert.equal(plain.length % 188, 0);
      assert.equal(plain[0], 0x47);
      assert.equal(plain[188], 0x47);
    }
    // ffmpeg itself reads the playlist (it fetches the key file), so it is valid HLS.
    assert.equal(await decodedFrameCount(fx.playlist), 150);
  });

  test('makeHlsAes implicit IV with key rotation (node:crypto)', async (t) => {
    const fx = await timed(t, () => makeHlsAes({ iv: 'implicit', rotateEvery: 2 }));
    assert.equal(fx.encryptedBy, 'node');
    assert.equal(fx.mediaSequence, 5);
    assert.deepEqual(
      fx.keys.map((k) => [k.uri, k.segments]),
      [
        ['key0.key', [0, 1]],
        ['key1.key', [2]],
      ],
    );
    const text = await readFile(fx.playlist, 'utf8');
    assert.ok(!text.includes('IV='), 'IV comes from the media sequence number');
    for (const k of fx.keys) {
      for (const i of k.segments) {
        const iv = Buffer.alloc(16);
        iv.writeUInt32BE(fx.mediaSequence + i, 12);
        const d = createDecipheriv('aes-128-cbc', k.key, iv);
        const seg = fx.segments[i]!;
        const plain = Buffer.concat([d.update(await readFile(path.join(fx.dir, seg))), d.final()]);
        assert.deepEqual(plain, await readFile(path.join(fx.plain!.dir, seg)));
      }
    }
    assert.equal(await decodedVideoHash(fx.playlist), await decodedVideoHash(fx.plain!.playlist));
  });

  test('makeHlsFmp4: EXT-X-MAP init + .m4s segments', async (t) => {
    const fx = await timed(t, () => makeHlsFmp4());
    const text = await readFile(fx.playlist, 'utf8');
    assert.ok(text.includes(`#EXT-X-MAP:URI="${fx.initName}"`));
    assert.ok(fx.segments.every((s) => s.endsWith('.m4s')));
    assert.equal(fx.segmentCount, 3);
    assert.deepEqual(await kinds(fx.playlist), ['audio:aac', 'video:h264']);
    near(await durationOf(fx.playlist), 6, 0.2, 'probed duration');
    assert.deepEqual((await topLevelBoxes(path.join(fx.dir, fx.initName))).slice(0, 2), ['ftyp', 'moov']);
  });

  test('makeHlsByteRange: contiguous ranges over one file', async (t) => {
    const fx = await timed(t, () => makeHlsByteRange());
    const size = (await stat(path.join(fx.dir, fx.mediaFile))).size;
    assert.ok(fx.segments.every((s) => s === fx.mediaFile));
    assert.equal(fx.ranges.length, 3);
    assert.equal(fx.ranges[0]?.offset, 0);
    for (let i = 1; i < fx.ranges.length; i++) {
      assert.equal(fx.ranges[i]?.offset, fx.ranges[i - 1]!.offset + fx.ranges[i - 1]!.length);
    }
    const last = fx.ranges.at(-1)!;
    assert.equal(last.offset + last.length, size);
    assert.equal(fx.totalBytes, size);
    assert.deepEqual(await kinds(fx.playlist), ['audio:aac', 'video:h264']);
  });

  test('makeHlsSeparateAudio: video-only variant, two audio renditions', async (t) => {
    const fx = await timed(t, () => makeHlsSeparateAudio());
    assert.deepEqual(await kinds(fx.video.playlist), ['video:h264']);
    assert.deepEqual(
      fx.audio.map((a) => [a.language, a.default]),
      [
        ['en', true],
        ['fr', false],
      ],
    );
    for (const a of fx.audio) {
      assert.deepEqual(await kinds(a.playlist), ['audio:aac']);
      near(a.duration, 6, 0.1, `${a.language} duration`);
    }
    // Different tones, so a test can tell which language it got.
    assert.notEqual(
      await decodedHash(fx.audio[0]!.playlist, 'a'),
      await decodedHash(fx.audio[1]!.playlist, 'a'),
    );
    const text = await readFile(fx.master, 'utf8');
    assert.match(text, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES/);
    assert.match(text, /NAME="Français",LANGUAGE="fr",DEFAULT=NO/);
    assert.match(text, /#EXT-X-STREAM-INF:.*AUDIO="aud"\nvideo\/index\.m3u8\n/);
  });

  test('makeHlsDiscontinuity: two pieces joined by EXT-X-DISCONTINUITY', async (t) => {
    const fx = await timed(t, () => makeHlsDiscontinuity());
    const text = await readFile(fx.playlist, 'utf8');
    assert.equal(fx.segmentCount, 4);
    assert.equal(fx.discontinuityAt, 2);
    assert.deepEqual(fx.segments, ['a/seg_000.ts', 'a/seg_001.ts', 'b/seg_000.ts', 'b/seg_001.ts']);
    assert.match(text, /a\/seg_001\.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:[\d.]+,\nb\/seg_000\.ts/);
    const [a, b] = fx.parts;
    // Both pieces start at the same timestamps: that is what makes the discontinuity real.
    const start = async (p: string) => Number((await ffprobeJson(p)).format['start_time']);
    near(await start(a.playlist), await start(b.playlist), 0.05, 'start times');
    assert.notEqual(await decodedVideoHash(a.playlist), await decodedVideoHash(b.playlist));
  });
});
