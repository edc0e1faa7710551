/**
 * Which merger muxes a job's tracks while they download: the in-process remux (native.ts) when every
 * track is H.264/AAC MPEG-TS, ffmpeg otherwise. Decided from each track's first bytes, before any
 * byte is muxed, so a stream ffmpeg must take costs nothing extra.
 */
import type { Logger } from '../log.js';
import { Merger, type MergerOptions, type TrackMerger } from './merger.js';
import { NativeMerger, nativeRefusal } from './native.js';

/** A track's first bytes, once it has some (null: it ended without any). */
export function firstBytes() {
  let settle!: (b: Buffer | null) => void;
  const bytes = new Promise<Buffer | null>((resolve) => {
    settle = resolve;
  });
  let seen = false;
  return {
    bytes,
    see(buffers: readonly Buffer[]) {
      if (seen) return;
      seen = true;
      settle(Buffer.concat(buffers));
    },
    end() {
      seen = true;
      settle(null);
    },
  };
}

export interface OpenMergerOptions extends MergerOptions {
  /** The config's native_remux, and what else rules it out (subtitles to mux). */
  native: boolean;
  /** First bytes of the main track and, with separateAudio, of the audio rendition. */
  heads: Promise<Buffer | null>[];
  log: Logger;
}

export async function openMerger(o: OpenMergerOptions): Promise<TrackMerger> {
  if (o.native) {
    const [main, audio] = await Promise.all(o.heads);
    const reason =
      nativeRefusal(main ?? null, { video: !o.audioOnly, audio: !o.separateAudio }) ??
      (o.separateAudio ? nativeRefusal(audio ?? null, { video: false, audio: true }) : null);
    if (reason === null) {
      o.log.debug('remuxing in-process');
      return new NativeMerger(o);
    }
    o.log.info({ reason }, 'remuxing with ffmpeg: the in-process remux does not take this stream');
  }
  return new Merger(o);
}
