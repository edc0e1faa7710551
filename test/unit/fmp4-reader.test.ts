/**
 * The pure fMP4 reader (src/media/fmp4-*.ts) on fMP4 that ffmpeg's hls muxer makes: what it reads of
 * the init segment and of each fragment, that the bytes may arrive cut anywhere, that the boxes a
 * packager puts between fragments are skipped, and that what it cannot carry it says so.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { readFragment } from '../../src/media/fmp4-fragment.js';
import { parseInit } from '../../src/media/fmp4-init.js';
import { Fmp4Reader, fmp4Refusal, looksFmp4 } from '../../src/media/fmp4-reader.js';
import { boxHeader } from '../../src/media/mp4-box-reader.js';
import { box, fullBox, u32be } from '../../src/media/mp4-box-writer.js';
import { makeTempDir, runFfmpeg } from '../helpers/fixtures.js';

let init: Buffer;
let segments: Buffer[];

before(async () => {
  // 4 s of 25 fps H.264 with B-frames (trun version 1: negative composition offsets) and AAC with
  // a Swedish language tag, as 2 s fMP4 segments.
  const dir = await makeTempDir('fmp4-unit');
  await runFfmpeg(
    [
      ...['-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=48000'],
      ...['-t', '4', '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', '50'],
      ...['-c:a', 'aac', '-b:a', '64k', '-metadata:s:a:0', 'language=swe'],
      ...['-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod', '-hls_segment_type', 'fmp4'],
      ...['-hls_segment_options', 'movflags=+negative_cts_offsets', '-hls_fmp4_init_filename', 'init.mp4'],
      ...['-hls_segment_filename', 's%03d.m4s', 'index.m3u8'],
    ],
    dir,
  );
  init = readFileSync(path.join(dir, 'init.mp4'));
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.m4s'))
    .sort();
  segments = names.map((f) => readFileSync(path.join(dir, f)));
});

/** The moov box inside the init segment (after its ftyp). */
function moovOf(b: Buffer): Buffer {
  for (let at = 0; at < b.length; ) {
    const h = boxHeader(b, at)!;
    if (h.type === 'moov') return b.subarray(at, at + h.size);
    at += h.size;
  }
  throw new Error('no moov');
}

function readAll(chunks: Buffer[]): Fmp4Reader {
  const r = new Fmp4Reader({ video: true, audio: true });
  for (const c of chunks) r.push(c);
  r.end();
  return r;
}

function cut(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

describe('fMP4 init segment', () => {
  it('reads each trak: id, handler, timescale, language, the verbatim sample entry, size and edit', () => {
    const { tracks } = parseInit(moovOf(init));
    assert.deepEqual(
      tracks.map((t) => [t.id, t.handler, t.timescale, t.language, t.entry.toString('latin1', 4, 8)]),
      [
        [1, 'vide', 12800, 'und', 'avc1'],
        [2, 'soun', 48000, 'swe', 'mp4a'],
      ],
    );
    assert.deepEqual([tracks[0]!.width / 65536, tracks[0]!.height / 65536], [160, 90]);
    // The entry is the stsd's, byte for byte: its avcC is in it.
    assert.ok(init.includes(tracks[0]!.entry));
    assert.ok(tracks[0]!.entry.includes('avcC'));
    // ffmpeg's hls muxer writes an empty edit of the B-frame delay (2 frames, 80 ms) first.
    assert.deepEqual(tracks[0]!.edit, { empty: 0.08, mediaTime: 0 });
  });

  it('refuses encrypted sample entries and a stsd with two entries', () => {
    const moov = Buffer.from(moovOf(init));
    moov.write('enca', moov.indexOf('mp4a'), 'latin1');
    assert.throws(() => parseInit(moov), /encrypted samples \(enca\)/);
    const two = Buffer.from(moovOf(init));
    const stsd = two.indexOf('stsd');
    two.writeUInt32BE(2, stsd + 8);
    assert.throws(() => parseInit(two), /overruns|2 sample entries/);
  });
});

describe('fMP4 fragments', () => {
  it('reads tfdt and trun version 1: decode times, signed composition offsets, sizes inside the mdat', () => {
    const seg = segments[1]!;
    let moof: ReturnType<typeof boxHeader> = null;
    let mdat: ReturnType<typeof boxHeader> = null;
    for (let at = 0; at < seg.length; ) {
      const h = boxHeader(seg, at)!;
      if (h.type === 'moof') moof = h;
      if (h.type === 'mdat') mdat = h;
      at += h.size;
    }
    const trex = parseInit(moovOf(init)).tracks.map((t) => t.trex);
    const runs = readFragment(seg, moof!, mdat!.start + 8, mdat!.start + mdat!.size, (id) => trex[id - 1]);
    const video = runs.find((r) => r.trackId === 1)!;
    assert.equal(video.baseTime, 50 * 512, 'the second segment starts 2 s (50 frames of 512 ticks) in');
    assert.equal(video.sizes.length, 50);
    assert.ok(
      video.cts.some((c) => c < 0),
      'B-frames shown before their decode time',
    );
    assert.equal(video.sync.filter(Boolean).length, 1, 'one keyframe per 2 s GOP');
    assert.equal(
      video.sizes.reduce((a, b) => a + b, 0) + runs[1]!.sizes.reduce((a, b) => a + b, 0),
      mdat!.size - 8,
    );
  });

  it('gives the same samples whatever the chunks the bytes arrive in, one byte at a time included', () => {
    const whole = readAll([init, ...segments]);
    const stream = Buffer.concat([init, ...segments]);
    for (const size of [1, 5, 4096]) {
      const r = readAll(cut(stream, size));
      assert.equal(r.unsupported, null);
      for (const k of ['video', 'audio'] as const) {
        assert.equal(r[k]!.table.count, whole[k]!.table.count);
        assert.equal(r[k]!.table.bytes, whole[k]!.table.bytes);
        assert.deepEqual(Buffer.concat(r[k]!.pending.buffers), Buffer.concat(whole[k]!.pending.buffers));
      }
    }
    assert.equal(whole.video!.table.count, 100);
    assert.ok(whole.audio!.table.count >= 187, String(whole.audio!.table.count));
  });

  it('never holds an mdat: cut anywhere, what it waits with is less than the largest sample', () => {
    const stream = Buffer.concat([init, ...segments]);
    const whole = readAll([stream]);
    let largest = 0;
    for (const t of [whole.video!, whole.audio!])
      for (let i = 0; i < t.table.count; i++) largest = Math.max(largest, t.table.sizes.at(i));
    const moofs = stream.toString('latin1').split('moof').length - 1;
    assert.ok(moofs >= 2);
    const r = new Fmp4Reader({ video: true, audio: true });
    let most = 0;
    for (const c of cut(stream, 3000)) {
      r.push(c);
      most = Math.max(most, r.held);
    }
    assert.ok(most < Math.max(largest, 3000), `held ${most} bytes, the largest sample is ${largest}`);
  });

  it('skips styp, sidx, prft, emsg and free boxes between fragments', () => {
    const plain = readAll([init, ...segments]);
    const extra = [
      box('styp', Buffer.from('msdhmsdh')),
      fullBox('prft', 1, 0, Buffer.alloc(20)),
      fullBox('emsg', 0, 0, Buffer.from('urn:x\0v\0', 'latin1'), u32be(1, 0, 0, 0)),
      box('free', Buffer.alloc(100)),
    ];
    const r = readAll([init, ...segments.flatMap((s) => [...extra, s])]);
    assert.equal(r.unsupported, null);
    assert.equal(r.video!.table.count, plain.video!.table.count);
    assert.equal(r.audio!.table.bytes, plain.audio!.table.bytes);
  });

  it('says why it cannot go on: media before the init, an mdat alone, a box without a size or too large, a cut end', () => {
    assert.match(readAll([...segments]).unsupported ?? '', /fragment before the init segment/);
    assert.match(
      readAll([init, box('mdat', Buffer.alloc(10))]).unsupported ?? '',
      /an mdat without its moof/,
    );
    const sized = (n: number, type: string) => Buffer.concat([u32be(n), Buffer.from(type, 'latin1')]);
    assert.match(readAll([init, sized(0, 'moof')]).unsupported ?? '', /without a size/);
    // A fragment is held whole until its end: one too large for that is refused before it is held.
    assert.match(readAll([init, sized(0x7fffffff, 'moof')]).unsupported ?? '', /a moof of 2147483647 bytes/);
    assert.match(readAll([init, segments[0]!.subarray(0, -1)]).unsupported ?? '', /ends inside a box/);
    assert.match(readAll([init.subarray(0, 200)]).unsupported ?? '', /ends inside a box/);
  });

  it('tells fMP4 from MPEG-TS by its first box, and refuses a track without what the MP4 needs', () => {
    assert.equal(looksFmp4(init), true);
    assert.equal(looksFmp4(Buffer.from([0x47, 0x40, 0x00, 0x10, 0, 0, 0, 0])), false);
    assert.equal(fmp4Refusal(Buffer.concat([init, segments[0]!]), { video: true, audio: true }), null);
    assert.equal(fmp4Refusal(null, { video: true, audio: true }), 'no data');
  });

  it('refuses a trun listing billions of default-sized samples at once, instead of running out of memory', () => {
    // tfhd gives a default sample size of 0; the trun is its 4-byte count and nothing else.
    const traf = box(
      'traf',
      fullBox('tfhd', 0, 0x20000 | 0x10, u32be(1, 0)),
      fullBox('trun', 0, 0, u32be(0xfffffff0)),
    );
    const moof = box('moof', fullBox('mfhd', 0, 0, u32be(1)), traf);
    const seg = Buffer.concat([moof, box('mdat', Buffer.alloc(16))]);
    const at = boxHeader(seg, 0)!;
    const trex = () => ({ descriptionIndex: 1, duration: 0, size: 0, flags: 0 });
    assert.throws(
      () => readFragment(seg, at, moof.length + 8, seg.length, trex),
      /more than its mdat can hold/,
    );
    // As many as the mdat has bytes are read (trun data offset: past the moof and the mdat header).
    const moofOf = (offset: number) =>
      box(
        'moof',
        fullBox('mfhd', 0, 0, u32be(1)),
        box(
          'traf',
          fullBox('tfhd', 0, 0x20000 | 0x10, u32be(1, 1)),
          fullBox('trun', 0, 1, u32be(16, offset)),
        ),
      );
    const fits = moofOf(moofOf(0).length + 8);
    const ok = Buffer.concat([fits, box('mdat', Buffer.alloc(16))]);
    const [run] = readFragment(ok, boxHeader(ok, 0)!, fits.length + 8, ok.length, trex);
    assert.equal(run!.sizes.length, 16);
  });

  it('never throws on damaged bytes: 300 random corruptions are read or refused', () => {
    const stream = Buffer.concat([init, segments[0]!]);
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const bad = Buffer.from(stream);
      for (let k = 0; k < 4; k++) bad[Math.floor(random() * bad.length)] = Math.floor(random() * 256);
      const r = readAll(cut(bad, 1 + Math.floor(random() * 5000)));
      if (r.unsupported) refused++;
      else for (const t of [r.video, r.audio]) if (t) assert.equal(t.pending.samples, t.table.count);
    }
    assert.ok(refused > 0, 'some corruptions are refused');
  });
});
