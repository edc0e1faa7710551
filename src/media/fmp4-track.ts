/**
 * One track of fMP4 for the in-process remux (src/pipeline/mux/in-process.ts): samples as the
 * fragments give them (decode time, composition offset, duration, sync) on the track's own
 * timescale, their bytes on their way to the file, and at the end the TrackBuild whose stsd is the
 * init segment's sample entry, verbatim. No codec-specific code: HEVC, AC-3, Opus are carried alike.
 * Pure: no I/O.
 */
import type { Fmp4TrackInfo } from './fmp4-init.js';
import { MOVIE_TIMESCALE, type TrackBuild } from './mp4-moov-writer.js';
import { SampleTable } from './mp4-sample-table.js';
import { Pending } from './sample-slabs.js';
import { TS_HZ } from './track-timeline.js';

export class Fmp4Track {
  readonly table = new SampleTable();
  readonly pending = new Pending();
  /** Decode time of the next sample when a fragment has no tfdt. */
  private next = 0;
  private lastDuration = 0;
  private firstPts = 0;
  private maxPts = -Infinity;
  private minCts = 0;
  /** Samples dropped: the TS tracks count transport damage here; fMP4 has none to count. */
  readonly dropped = 0;

  constructor(
    readonly info: Fmp4TrackInfo,
    private readonly decline: (why: string) => void,
  ) {}

  /** Where the first sample's bytes enter the timeline: the fragment's tfdt, or after the last. */
  startRun(baseTime: number | null): void {
    if (baseTime === null) return;
    if (this.table.count > 0 && baseTime < this.next && this.next - baseTime > this.info.timescale) {
      this.decline('fMP4 decode times run backwards');
      return;
    }
    if (this.table.count > 0 && baseTime < this.next) return; // overlap of a tick or two: keep counting
    this.next = baseTime;
  }

  add(bytes: Buffer, duration: number, cts: number, sync: boolean): void {
    if (duration === 0) {
      // Samples stacked on one decode time (no duration in the trun nor its defaults): no table of
      // ours would play them as the stream means; ffmpeg gets to guess.
      this.decline('fMP4 samples without a duration');
      return;
    }
    const dts = this.next;
    if (this.table.count === 0) this.firstPts = dts + cts;
    this.table.add(bytes.length, dts, cts, sync);
    this.next = dts + duration;
    this.lastDuration = duration;
    if (dts + cts > this.maxPts) this.maxPts = dts + cts;
    if (cts < this.minCts) this.minCts = cts;
    this.pending.buffers.push(bytes);
    this.pending.samples++;
  }

  /**
   * Where the track starts on the 90 kHz timeline the tracks share: its first sample's presentation
   * time on its own timescale, placed by the init segment's edit list (an empty edit first, the media
   * from media_time on) as ffmpeg's mov demuxer places it. Samples before media_time (an encoder's
   * priming) are not cut: they start the track earlier, as in `ffmpeg -c copy`, which shifts the
   * other tracks later instead.
   */
  get start90(): number {
    const edit = this.info.edit;
    const seconds = (this.firstPts - (edit?.mediaTime ?? 0)) / this.info.timescale + (edit?.empty ?? 0);
    return seconds * TS_HZ;
  }

  build(id: number, origin: number): TrackBuild | string {
    const t = this.table;
    if (t.count === 0) return 'no samples in the fMP4 track';
    // The last sample lasts as long as the one before it, whatever its trun says (an encoder's short
    // last AAC frame): ffmpeg's mov demuxer gives it that duration, so its stream copy writes that.
    t.lastDuration = t.lastDelta || this.lastDuration;
    const shift = Math.max(0, -this.minCts);
    t.shiftCts(shift);
    this.minCts = 0;
    const from = this.firstPts;
    const video = this.info.handler === 'vide';
    return {
      id,
      timescale: this.info.timescale,
      entry: {
        kind: 'verbatim',
        video,
        box: this.info.entry,
        width: this.info.width,
        height: this.info.height,
      },
      table: t,
      mediaStart: from + shift - t.firstDts,
      // From the first instant shown to the end of the last sample shown (B-frames: not the last decoded).
      shown: this.maxPts + t.lastDuration - from,
      delay: ((this.start90 - origin) * MOVIE_TIMESCALE) / TS_HZ,
      language: this.info.language,
    };
  }
}
