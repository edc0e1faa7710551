import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { detectDisguise, isDisguised, stripDisguise } from '../../src/media/disguise.js';
import {
  ffprobeJson,
  makeHlsFmp4,
  makeHlsTs,
  makeTempDir,
  runFfmpeg,
  writeFixtureFile,
} from '../helpers/fixtures.js';

/** A real 2 s MPEG-TS segment (H.264 + AAC) from ffmpeg's hls muxer. */
async function tsSegment(): Promise<Buffer> {
  const fx = await makeHlsTs();
  return readFile(path.join(fx.dir, fx.segments[0]!));
}

/** One 16x16 picture in each format, encoded by ffmpeg: the "whole tiny image" some CDNs prepend. */
const IMAGE_ARGS = {
  png: ['-c:v', 'png', '-f', 'image2pipe'],
  jpeg: ['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-f', 'image2pipe'],
  gif: ['-f', 'gif'],
  bmp: ['-c:v', 'bmp', '-f', 'image2pipe'],
} as const;
/**
 * Whether ffprobe takes the disguised bytes for the picture. A small JPEG in front does not stop its
 * mpegts probe (it resyncs); PNG, GIF and BMP do.
 */
const FOOLS_FFPROBE = { png: true, jpeg: false, gif: true, bmp: true } as const;
const image = (kind: keyof typeof IMAGE_ARGS) =>
  runFfmpeg(['-f', 'lavfi', '-i', 'color=c=red:s=16x16', '-frames:v', '1', ...IMAGE_ARGS[kind], '-']);

/** ffprobe's container name for bytes on disk, or 'unreadable' when it gives up. */
async function probedFormat(data: Buffer, name: string): Promise<string> {
  const file = await writeFixtureFile(await makeTempDir('disguise'), name, data);
  try {
    return (await ffprobeJson(file)).format.format_name;
  } catch {
    return 'unreadable';
  }
}

describe('stripDisguise', () => {
  for (const kind of Object.keys(IMAGE_ARGS) as (keyof typeof IMAGE_ARGS)[]) {
    test(`cuts a whole ${kind} picture off real TS: the rest is the original bytes, ffprobe reads it as mpegts`, async () => {
      const ts = await tsSegment();
      const picture = await image(kind);
      const disguised = Buffer.concat([picture, ts]);
      const before = await probedFormat(disguised, `${kind}.ts`);
      assert.equal(before !== 'mpegts', FOOLS_FFPROBE[kind], `ffprobe took the disguised data for ${before}`);

      assert.deepEqual(detectDisguise(disguised), { kind, offset: picture.length });
      const stripped = stripDisguise(disguised);
      assert.ok(stripped.equals(ts));
      // a view, not a copy
      assert.equal(stripped.buffer, disguised.buffer);
      assert.equal(stripped.byteOffset, disguised.byteOffset + picture.length);

      assert.equal(await probedFormat(stripped, `${kind}-stripped.ts`), 'mpegts');
      const streams = (await ffprobeJson(await writeFixtureFile(await makeTempDir('d'), 's.ts', stripped)))
        .streams;
      assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    });
  }

  test("ffmpeg's hls demuxer refuses a PNG-disguised segment and remuxes the stripped one", async () => {
    const ts = await tsSegment();
    const dir = await makeTempDir('disguise-hls');
    const playlist = '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n#EXT-X-ENDLIST\n';
    await writeFixtureFile(dir, 'index.m3u8', playlist);
    const remux = () =>
      runFfmpeg(['-i', path.join(dir, 'index.m3u8'), '-c', 'copy', path.join(dir, 'out.mp4')]);
    const disguised = Buffer.concat([await image('png'), ts]);
    await writeFixtureFile(dir, 'seg.ts', disguised);
    await assert.rejects(remux(), /png_pipe|Invalid data/);
    await writeFixtureFile(dir, 'seg.ts', stripDisguise(disguised));
    await remux();
    const streams = (await ffprobeJson(path.join(dir, 'out.mp4'))).streams;
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
  });

  test('cuts a bare signature header (no real picture), like the 120-byte PNG N_m3u8DL-RE knows', async () => {
    const ts = await tsSegment();
    const header = Buffer.alloc(120, 0x11);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(header);
    header[118] = 0x60;
    header[119] = 0x82;
    assert.ok(stripDisguise(Buffer.concat([header, ts])).equals(ts));
  });

  test('a GIF prefix is caught although its first byte is the TS sync byte 0x47', async () => {
    const ts = await tsSegment();
    const gif = await image('gif');
    assert.equal(gif[0], 0x47);
    assert.equal(detectDisguise(Buffer.concat([gif, ts]))?.kind, 'gif');
  });

  test('finds a TS tail shorter than three packets when it ends exactly on a packet boundary', async () => {
    const ts = (await tsSegment()).subarray(0, 2 * 188);
    const png = await image('png');
    assert.ok(stripDisguise(Buffer.concat([png, ts])).equals(ts));
  });

  test('strips a short unknown junk prefix in front of TS', async () => {
    const ts = await tsSegment();
    for (const junk of [Buffer.alloc(7), Buffer.from('garbage before the stream\r\n')]) {
      const found = detectDisguise(Buffer.concat([junk, ts]));
      assert.deepEqual(found, { kind: 'unknown', offset: junk.length });
    }
  });

  test('leaves real TS untouched (the same Buffer)', async () => {
    const ts = await tsSegment();
    assert.equal(stripDisguise(ts), ts);
    assert.equal(isDisguised(ts), false);
  });

  test('leaves fMP4 init and media segments untouched', async () => {
    const fx = await makeHlsFmp4();
    for (const name of [fx.initName, fx.segments[0]!]) {
      const data = await readFile(path.join(fx.dir, name));
      assert.equal(stripDisguise(data), data, name);
    }
  });

  test('leaves ADTS AAC and ID3-tagged packed audio untouched', async () => {
    const adts = await runFfmpeg(['-f', 'lavfi', '-i', 'sine=duration=1', '-c:a', 'aac', '-f', 'adts', '-']);
    assert.equal(stripDisguise(adts), adts);
    // RFC 8216 3.4: packed audio starts with an ID3 PRIV timestamp tag (10-byte header, empty here).
    const id3 = Buffer.concat([Buffer.from('ID3\u0004\u0000\u0000\u0000\u0000\u0000\u0000', 'latin1'), adts]);
    assert.equal(stripDisguise(id3), id3);
  });

  test('leaves a picture with no TS behind it, HTML and short buffers untouched', async () => {
    const png = await image('png');
    const html = Buffer.from(`<html><body>${'Gone. '.repeat(400)}</body></html>`);
    for (const data of [png, html, Buffer.from([0x47]), Buffer.alloc(0)]) {
      assert.equal(stripDisguise(data), data);
      assert.equal(detectDisguise(data), null);
    }
  });
});
