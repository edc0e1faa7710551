/**
 * Where each track starts on the clock the renditions of a playlist share (RFC 8216 6.2.4), for the
 * ffmpeg merge. Given a playlist, `ffmpeg -i master.m3u8 -c copy` keeps the offset between a video and
 * a separate audio rendition; given the two tracks as separate inputs, ffmpeg starts each of them at 0
 * and the offset is lost. Each input's `-itsoffset` puts it back: an input starts at its clock time
 * less the earliest input's.
 */
import { runTool, SEGMENT_DEMUXERS, safeInput } from './run.js';

const PRIV_OWNER = 'com.apple.streaming.transportStreamTimestamp';

/** An ID3v2 size: 28 bits in four bytes of seven (syncsafe), or plain 32 bits (v2.3 frame sizes). */
function id3Size(b: Buffer, at: number, syncsafe: boolean): number {
  if (!syncsafe) return b.readUInt32BE(at);
  return (
    ((b[at]! & 0x7f) << 21) | ((b[at + 1]! & 0x7f) << 14) | ((b[at + 2]! & 0x7f) << 7) | (b[at + 3]! & 0x7f)
  );
}

/**
 * The 90 kHz time of packed audio's first sample, from the ID3 PRIV frame that RFC 8216 3.4 puts in
 * front of every packed audio segment (`com.apple.streaming.transportStreamTimestamp`, 33 bits in 8
 * bytes); null when `head` does not start with one.
 */
export function packedAudioTimestamp(head: Buffer): number | null {
  if (head.length < 10 || head.toString('latin1', 0, 3) !== 'ID3') return null;
  const version = head[3]!;
  const end = Math.min(head.length, 10 + id3Size(head, 6, true));
  for (let at = 10; at + 10 <= end; ) {
    const id = head.toString('latin1', at, at + 4);
    const size = id3Size(head, at + 4, version >= 4);
    const data = at + 10;
    if (size <= 0 || data + size > end) return null;
    if (id === 'PRIV') {
      const zero = head.indexOf(0, data);
      if (zero > 0 && zero < data + size && head.toString('latin1', data, zero) === PRIV_OWNER) {
        if (zero + 9 > data + size) return null;
        return Number(head.readBigUInt64BE(zero + 1) & 0x1ffffffffn);
      }
    }
    at = data + size;
  }
  return null;
}

/**
 * The clock time (seconds) at which ffmpeg's timeline for a track read alone starts: ffprobe's start
 * time of the track's first bytes (MPEG-TS, fMP4 with its init section), or, for packed audio, whose
 * demuxer starts at 0 where the playlist's clock says otherwise, its ID3 timestamp. Null when it
 * cannot be told.
 */
export async function trackClockStart(
  ffprobe: string,
  head: Buffer | null,
  signal?: AbortSignal,
): Promise<number | null> {
  if (!head || head.length === 0) return null;
  const packed = packedAudioTimestamp(head);
  if (packed !== null) return packed / 90_000;
  try {
    const { stdout } = await runTool(
      ffprobe,
      ['-v', 'error', ...safeInput('pipe', SEGMENT_DEMUXERS), '-show_entries', 'format=start_time', 'pipe:0'],
      {
        signal,
        inputs: {
          count: 1,
          onInputs: ([input]) => {
            input?.end(head);
          },
        },
      },
    );
    const m = /start_time=(-?[\d.]+)/.exec(stdout.toString());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * `-itsoffset` seconds for each input: how much later than the earliest it starts on the shared
 * clock. All 0 when a start is unknown (ffmpeg's own behaviour, as before), and when the starts are
 * further apart than a day (clocks that were never aligned: nothing to keep).
 */
export function inputOffsets(starts: readonly (number | null)[]): number[] {
  if (starts.some((s) => s === null || !Number.isFinite(s))) return starts.map(() => 0);
  const known = starts as number[];
  const first = Math.min(...known);
  if (Math.max(...known) - first > 86_400) return known.map(() => 0);
  return known.map((s) => Math.round((s - first) * 1e6) / 1e6);
}
