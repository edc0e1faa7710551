/**
 * The sample entries of the stsd box (ISO/IEC 14496-12 8.5.2): avc1 with its avcC (14496-15) for
 * H.264 video, mp4a with its esds (14496-14) for AAC audio, the esds bit rates counted from the
 * sample table as ffmpeg's mov muxer counts them. Pure: no I/O.
 */
import { box, fullBox, u32be } from './mp4-box-writer.js';
import type { SampleTable } from './mp4-sample-table.js';

export interface VideoEntry {
  kind: 'video';
  width: number;
  height: number;
  sarWidth: number;
  sarHeight: number;
  avcC: Buffer;
}

export interface AudioEntry {
  kind: 'audio';
  sampleRate: number;
  channels: number;
  /** AudioSpecificConfig. */
  asc: Buffer;
}

/**
 * A sample entry copied as it is from an fMP4 init segment (fmp4-init.ts), with the tkhd size that
 * came with it (16.16 fixed point): the codec's own boxes (hvcC, dac3, dOps, ...) need no knowing.
 */
export interface VerbatimEntry {
  kind: 'verbatim';
  video: boolean;
  box: Buffer;
  width: number;
  height: number;
}

export function avc1(e: VideoEntry): Buffer {
  const body = Buffer.alloc(78);
  body.writeUInt16BE(1, 6); // data_reference_index
  body.writeUInt16BE(e.width, 24);
  body.writeUInt16BE(e.height, 26);
  body.writeUInt32BE(0x480000, 28); // 72 dpi
  body.writeUInt32BE(0x480000, 32);
  body.writeUInt16BE(1, 40); // frame_count
  body.writeUInt16BE(0x18, 74); // depth
  body.writeInt16BE(-1, 76);
  const extra = [box('avcC', e.avcC)];
  if (e.sarWidth !== e.sarHeight) extra.push(box('pasp', u32be(e.sarWidth, e.sarHeight)));
  return box('avc1', body, ...extra);
}

/** An MPEG-4 descriptor: tag, then its size in the 4-byte expandable form ffmpeg writes. */
function descriptor(tag: number, ...payload: Buffer[]): Buffer {
  const size = payload.reduce((n, p) => n + p.length, 0);
  const head = Buffer.from([
    tag,
    0x80 | ((size >> 21) & 0x7f),
    0x80 | ((size >> 14) & 0x7f),
    0x80 | ((size >> 7) & 0x7f),
    size & 0x7f,
  ]);
  return Buffer.concat([head, ...payload]);
}

function mp4a(e: AudioEntry, id: number, avgBitrate: number, maxBitrate: number): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 6);
  body.writeUInt16BE(e.channels, 16);
  body.writeUInt16BE(16, 18);
  body.writeUInt32BE(e.sampleRate <= 0xffff ? e.sampleRate * 0x10000 : 0, 24);
  const decoderConfig = Buffer.alloc(13);
  decoderConfig[0] = 0x40; // Audio ISO/IEC 14496-3
  decoderConfig[1] = 0x15; // stream type audio, upstream 0, reserved 1
  decoderConfig.writeUInt32BE(maxBitrate >>> 0, 5);
  decoderConfig.writeUInt32BE(avgBitrate >>> 0, 9);
  const es = descriptor(
    0x03,
    Buffer.from([id >> 8, id & 0xff, 0]), // ES_ID (the track's, as ffmpeg writes), flags
    descriptor(0x04, decoderConfig, descriptor(0x05, e.asc)),
    descriptor(0x06, Buffer.from([0x02])),
  );
  return box('mp4a', body, fullBox('esds', 0, 0, es));
}

/** The esds bit rates: the average, and the most bits in any one second of media. */
export function mp4aFor(
  e: AudioEntry,
  id: number,
  s: SampleTable,
  runs: readonly number[],
  timescale: number,
): Buffer {
  const seconds = s.mediaDuration / timescale;
  const avg = seconds > 0 ? Math.round((s.bytes * 8) / seconds) : 0;
  let max = 0;
  let second = -1;
  let inSecond = 0;
  // Sample times from the duration runs: the table keeps no time per sample.
  let time = 0;
  for (let r = 0, i = 0; r < runs.length; r += 2) {
    for (let k = 0; k < runs[r]!; k++, i++) {
      const at = Math.floor(time / timescale);
      if (at !== second) {
        second = at;
        inSecond = 0;
      }
      inSecond += s.sizes.at(i);
      max = Math.max(max, inSecond * 8);
      time += runs[r + 1]!;
    }
  }
  return mp4a(e, id, avg, max);
}
