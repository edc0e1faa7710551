/**
 * Which merger muxes a job's tracks while they download: the in-process remux (in-process.ts) when every
 * track is H.264/AAC MPEG-TS, or every track fMP4 (any codec: its sample entry is copied), ffmpeg
 * otherwise. Decided from each track's first bytes, before any
 * byte is muxed, so a stream ffmpeg must take costs nothing extra.
 */

import { fmp4Refusal, looksFmp4 } from '../../media/fmp4-reader.js';
import type { Logger } from '../../service/log.js';
import { deferred } from '../deferred.js';
import { Merger } from './ffmpeg-pipe.js';
import { NativeMerger, nativeRefusal } from './in-process.js';
import type { MergerOptions, TrackMerger } from './sink.js';

/** Most bytes kept of a track's start while waiting for its first media segment. */
const HEAD_LIMIT = 8 * 1024 * 1024;

/**
 * A track's first bytes up to the end of its first media segment (an fMP4 init section alone says
 * neither the codec's timing nor where the media starts), once it has them; null when it ended
 * without any.
 */
export function firstBytes() {
  const bytes = deferred<Buffer | null>();
  let seen = false;
  const kept: Buffer[] = [];
  let size = 0;
  const done = () => {
    seen = true;
    bytes.resolve(size > 0 ? Buffer.concat(kept, size) : null);
    kept.length = 0;
  };
  return {
    bytes: bytes.promise,
    /** `fetch` says what the buffers are; without it (a resumed track's replay) they count as media. */
    see(buffers: readonly Buffer[], fetch?: { pieces: readonly { kind: string }[] } | null) {
      if (seen) return;
      // Copies: the track reuses its buffers once they are written. No more than the limit: a 128 MB
      // first segment copied (and joined) whole held the event loop for a tenth of a second.
      for (const b of buffers) {
        if (size >= HEAD_LIMIT) break;
        kept.push(Buffer.from(b.subarray(0, HEAD_LIMIT - size)));
        size += Math.min(b.length, HEAD_LIMIT - size);
      }
      if (!fetch || fetch.pieces.some((p) => p.kind === 'segment') || size >= HEAD_LIMIT) done();
    },
    end() {
      if (!seen) done();
    },
  };
}

export interface OpenMergerOptions extends Omit<MergerOptions, 'offsets'> {
  /** The config's native_remux, and what else rules it out (subtitles to mux). */
  native: boolean;
  /** First bytes of the main track and, with separateAudio, of the audio rendition. */
  heads: Promise<Buffer | null>[];
  /** For ffmpeg with separate tracks: where each starts on the shared clock (start-time.ts). */
  offsets: () => Promise<{ main: number; audio: number }>;
  log: Logger;
  /** Passed to the in-process remux only: it alone writes its file in order (NativeMergerOptions). */
  onOpen?: (file: string, headerBytes: number) => void;
}

export async function openMerger(o: OpenMergerOptions): Promise<TrackMerger> {
  if (o.native) {
    const [main, audio] = await Promise.all(o.heads);
    const fmp4 = main ? looksFmp4(main) : false;
    const refusal = fmp4 ? fmp4Refusal : nativeRefusal;
    const reason =
      refusal(main ?? null, { video: !o.audioOnly, audio: !o.separateAudio }) ??
      (o.separateAudio && audio && looksFmp4(audio) !== fmp4 ? 'MPEG-TS and fMP4 tracks together' : null) ??
      (o.separateAudio ? refusal(audio ?? null, { video: false, audio: true }) : null);
    if (reason === null) {
      o.log.debug({ format: fmp4 ? 'fmp4' : 'ts' }, 'remuxing in-process');
      return new NativeMerger({ ...o, format: fmp4 ? 'fmp4' : 'ts' });
    }
    o.log.info({ reason }, 'remuxing with ffmpeg: the in-process remux does not take this stream');
  }
  return new Merger({ ...o, offsets: o.separateAudio ? await o.offsets() : undefined });
}
