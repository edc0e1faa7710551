import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { box, type Container, container, fullBox, u32be, u64be } from '../../src/media/mp4-box-writer.js';
import { readSampleIndex, type TrackSamples } from '../../src/media/mp4-sample-index.js';
import { keyframeBefore, mergeRanges, planClip, withoutRanges } from '../../src/pipeline/mp4/clip-plan.js';
import { RangePlan } from '../../src/pipeline/mp4/range-plan.js';

const u16be = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
const join = (c: Container) => Buffer.concat(c.parts, c.length);

/**
 * A moov with one video track: `n` samples of `size` bytes at 25 fps (timescale 2500), two per chunk,
 * chunks `gap` bytes apart from offset `at`; a sync sample every `gop`; an edit list starting the
 * media at `mediaStart` units; extra boxes inside the moov (an mvex makes it fragmented).
 */
function moovOf(o: {
  n: number;
  size: number;
  gop: number;
  at: number;
  gap: number;
  mediaStart?: number;
  extra?: Buffer[];
  /** co64 and a 16-bit stz2 instead of stco and stsz. */
  wide?: boolean;
  /** Edit list entries [duration, media time] instead of the one from mediaStart. */
  edits?: [number, number][];
}): Buffer {
  const chunks = Math.ceil(o.n / 2);
  const stbl = container(
    'stbl',
    fullBox('stsd', 0, 0, u32be(0)),
    fullBox('stts', 0, 0, u32be(1, o.n, 100)),
    fullBox(
      'stss',
      0,
      0,
      u32be(
        Math.ceil(o.n / o.gop),
        ...Array.from({ length: Math.ceil(o.n / o.gop) }, (_, i) => i * o.gop + 1),
      ),
    ),
    fullBox('stsc', 0, 0, u32be(1, 1, 2, 1)),
    ...(o.wide
      ? [
          fullBox(
            'stz2',
            0,
            0,
            u32be(16, o.n),
            Buffer.concat(Array.from({ length: o.n }, () => u16be(o.size))),
          ),
          fullBox(
            'co64',
            0,
            0,
            u32be(chunks),
            ...Array.from({ length: chunks }, (_, c) => u64be(o.at + c * o.gap)),
          ),
        ]
      : [
          fullBox('stsz', 0, 0, u32be(o.size, o.n)),
          fullBox('stco', 0, 0, u32be(chunks, ...Array.from({ length: chunks }, (_, c) => o.at + c * o.gap))),
        ]),
  );
  const mdia = container(
    'mdia',
    fullBox('mdhd', 0, 0, u32be(0, 0, 2500, o.n * 100, 0)),
    fullBox('hdlr', 0, 0, u32be(0), Buffer.from('vide'), u32be(0, 0, 0), Buffer.from('v\0')),
    container('minf', stbl),
  );
  const edits = o.edits ?? [[o.n * 40, o.mediaStart ?? 0]];
  const elst = fullBox(
    'elst',
    0,
    0,
    u32be(edits.length, ...edits.flatMap(([d, t]) => [d, t >>> 0, 0x10000])),
  );
  const trak = container(
    'trak',
    fullBox('tkhd', 0, 3, u32be(0, 0, 1, 0, o.n * 40)),
    container('edts', elst),
    mdia,
  );
  const mvhd = fullBox('mvhd', 0, 0, u32be(0, 0, 1000, o.n * 40), Buffer.alloc(80));
  return join(container('moov', mvhd, trak, ...(o.extra ?? [])));
}

describe('the MP4 sample index', () => {
  it('places every sample from stsc, stsz and stco, and times them from stts and the edit list', () => {
    const index = readSampleIndex(moovOf({ n: 10, size: 100, gop: 5, at: 1000, gap: 500, mediaStart: 200 }))!;
    assert.equal(index.duration, 0.4);
    const t = index.tracks[0]!;
    assert.equal(t.handler, 'vide');
    assert.deepEqual(t.offsets.slice(0, 4), [1000, 1100, 1500, 1600]);
    assert.deepEqual(t.chunkOf.slice(0, 4), [0, 0, 1, 1]);
    assert.deepEqual(t.sync, [0, 5]);
    // 100 units of 2500 per sample; the edit list starts the media at 200 units (0.08 s).
    assert.equal(t.pts[0], -0.08);
    assert.equal(t.pts[2], 0);
  });

  it("takes the last sample's time for the duration when mvhd says 0", () => {
    const moov = moovOf({ n: 10, size: 100, gop: 5, at: 1000, gap: 500 });
    assert.equal(moov.toString('latin1', 12, 16), 'mvhd');
    moov.writeUInt32BE(0, 32);
    assert.equal(readSampleIndex(moov)!.duration, 0.36);
  });

  it('refuses a fixed sample size claiming more samples than the file holds, before building them', () => {
    const moov = moovOf({ n: 10, size: 100, gop: 5, at: 1000, gap: 500 });
    assert.ok(readSampleIndex(moov, 3000));
    // One size for every sample: 1.5 M samples of 1000 bytes (tables consistent: 300,000 a chunk, one
    // stts entry for all) do not fit in a 3,000-byte file, and are not built.
    const fixed = Buffer.from(moov);
    const at = (type: string) => fixed.indexOf(type, 0, 'latin1');
    fixed.writeUInt32BE(1000, at('stsz') + 8);
    fixed.writeUInt32BE(1_500_000, at('stsz') + 12);
    fixed.writeUInt32BE(300_000, at('stsc') + 16);
    fixed.writeUInt32BE(1_500_000, at('stts') + 12);
    assert.equal(readSampleIndex(fixed, 3000), null);
    assert.equal(readSampleIndex(fixed, 2e9)!.tracks[0]!.sizes.length, 1_500_000, 'in a 2 GB file they fit');
  });

  it('reads co64 offsets past 4 GiB and stz2 sizes', () => {
    const t = readSampleIndex(moovOf({ n: 4, size: 300, gop: 2, at: 5_000_000_000, gap: 1000, wide: true }))!
      .tracks[0]!;
    assert.deepEqual(t.sizes, [300, 300, 300, 300]);
    assert.deepEqual(t.offsets, [5_000_000_000, 5_000_000_300, 5_000_001_000, 5_000_001_300]);
  });

  it('puts leading empty edits before the media, and refuses several real edits', () => {
    // 500 ms empty (movie timescale 1000), then the media from its start.
    const delayed = readSampleIndex(
      moovOf({
        n: 4,
        size: 10,
        gop: 2,
        at: 0,
        gap: 20,
        edits: [
          [500, -1],
          [160, 0],
        ],
      }),
    )!;
    assert.equal(delayed.tracks[0]!.pts[0], 0.5);
    assert.equal(
      readSampleIndex(
        moovOf({
          n: 4,
          size: 10,
          gop: 2,
          at: 0,
          gap: 20,
          edits: [
            [80, 0],
            [80, 200],
          ],
        }),
      ),
      null,
    );
  });

  it('answers null for a fragmented moov (mvex) and for a table that overruns its box', () => {
    const mvex = box('mvex', fullBox('trex', 0, 0, u32be(1, 1, 0, 0, 0)));
    assert.equal(readSampleIndex(moovOf({ n: 4, size: 10, gop: 2, at: 0, gap: 20, extra: [mvex] })), null);
    const moov = moovOf({ n: 4, size: 10, gop: 2, at: 0, gap: 20 });
    moov.writeUInt32BE(moov.length + 50, 0);
    assert.equal(readSampleIndex(moov.subarray(0, moov.length - 10)), null);
  });
});

describe('planning a clip', () => {
  const track = (sync: number[] | null): TrackSamples => ({
    trackId: 1,
    handler: 'vide',
    timescale: 1,
    // Samples of 100 kB: the first second and the clip are too far apart to be merged.
    offsets: Array.from({ length: 100 }, (_, i) => i * 100_000),
    sizes: new Array(100).fill(100_000),
    chunkOf: Array.from({ length: 100 }, (_, i) => i),
    pts: Array.from({ length: 100 }, (_, i) => i),
    dts: Array.from({ length: 100 }, (_, i) => i),
    sync,
  });

  it('starts one keyframe before the one at or before start', () => {
    assert.equal(keyframeBefore(track([0, 10, 20, 30]), 25), 10);
    assert.equal(keyframeBefore(track([0, 10, 20, 30]), 20), 10);
    assert.equal(keyframeBefore(track([0, 10, 20, 30]), 5), 0);
    assert.equal(keyframeBefore(track(null), 25), 24);
  });

  it('fetches the samples from the keyframe to one past end, and the first second, merged', () => {
    const plan = planClip(
      { duration: 100, tracks: [track([0, 10, 20, 30, 40])] },
      { start: 35, end: 50 },
      10_000_000,
    )!;
    // Keyframe 20 (one before 30), 2 s earlier: sample 18; end 50 + 2 s, then one more: 53.
    // The first second: samples 0 and 1, then one more.
    assert.deepEqual(plan.ranges, [
      { start: 0, end: 300_000 },
      { start: 1_800_000, end: 5_400_000 },
    ]);
    assert.equal(plan.bytes, 3_900_000);
    assert.equal(plan.keyframe, 20);
  });

  it('answers null when the sample table points past the end of the file', () => {
    assert.equal(
      planClip({ duration: 100, tracks: [track(null)] }, { start: 90, end: null }, 5_000_000),
      null,
    );
  });

  it('merges ranges closer than the gap, in order', () => {
    assert.deepEqual(
      mergeRanges(
        [
          { start: 500, end: 600 },
          { start: 0, end: 100 },
          { start: 150, end: 200 },
        ],
        50,
      ),
      [
        { start: 0, end: 200 },
        { start: 500, end: 600 },
      ],
    );
  });

  it('leaves out the bytes already fetched (the head, the moov)', () => {
    const ranges = [
      { start: 0, end: 100 },
      { start: 200, end: 300 },
    ];
    assert.deepEqual(withoutRanges(ranges, [{ start: 50, end: 250 }]), [
      { start: 0, end: 50 },
      { start: 250, end: 300 },
    ]);
    assert.deepEqual(withoutRanges(ranges, [{ start: 0, end: 400 }]), []);
    assert.deepEqual(withoutRanges(ranges, [{ start: 120, end: 130 }]), ranges);
  });

  it('a sparse range plan leaves only the ranges to fetch', () => {
    const plan = RangePlan.sparse(1000, [
      { start: 100, end: 200 },
      { start: 500, end: 1000 },
    ]);
    assert.equal(plan.missingBytes, 600);
    assert.deepEqual(
      plan.pieces.map((p) => [p.start, p.end, p.written]),
      [
        [0, 100, 100],
        [100, 200, 100],
        [200, 500, 500],
        [500, 1000, 500],
      ],
    );
    assert.deepEqual(plan.firstOpen()?.start, 100);
  });
});
