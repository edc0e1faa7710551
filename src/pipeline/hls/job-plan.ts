/**
 * What an HLS job downloads, decided before any segment is fetched: its tracks (the main one first,
 * then a separate audio rendition), each with its plan, its file and, for a live stream, its
 * recording; how many requests each keeps in flight; the request's key override; for a clip or skip
 * rules, the segments each track keeps (segment-choice.ts).
 */
import path from 'node:path';
import { type ClipRange, clipRange } from '../../jobs/clip-range.js';
import type { JobRequest } from '../../jobs/types.js';
import { parseIv } from '../../playlist/keys.js';
import type { MediaPlaylist } from '../../playlist/model.js';
import type { DownloadContext } from '../context.js';
import { readCheckpoint } from './checkpoint.js';
import { type Span, segmentSpans } from './clip-window.js';
import { LiveRecording } from './live-recording.js';
import { type PlaylistSource, reloadTrack, type Selected, type Track } from './renditions.js';
import { chooseSegments, type SegmentChoice } from './segment-choice.js';
import { skipRules, skipSpans } from './skip-rules.js';
import type { TrackOptions } from './track-download.js';
import { emptyPlan, type KeyOverride, planTrack, type TrackPlan, urlOf } from './track-plan.js';

/** The tracks to download: the main one first, then a separate audio rendition, if any. */
export interface JobPlan {
  selected: Selected;
  live: boolean;
  /** audio_only with a separate rendition: that rendition alone is the main track. */
  mainIsAudio: boolean;
  tracks: TrackJob[];
  main: TrackJob;
  audio: TrackJob | null;
  clip: ClipRange | null;
  /** What the clip and the skip rules left out (null: neither asked for). */
  selection: Selection | null;
}

/** One track of the job: what to fetch, where it goes, and, for live streams, its recording. */
export interface TrackJob {
  label: 'video' | 'audio';
  which: 'main' | 'audio';
  plan: TrackPlan;
  file: string;
  live: LiveRecording | null;
  /** Live: the fingerprint its checkpoints carry, and the checkpoint a restart found. */
  resume?: TrackOptions['resume'];
}

type Concurrency = { initial: number; max: number };

export function keyOverride(request: JobRequest): KeyOverride | null {
  if (!request.key && !request.iv) return null;
  return { key: Boolean(request.key), iv: request.iv ? parseIv(request.iv) : null };
}

/**
 * Requests in flight for the main track; a separate audio rendition gets half. Audio segments are
 * small but as many as the video's (DASH: one per video segment), so their count, not their bytes,
 * sets the audio track's time: at a quarter, the audio of a 600-segment DASH stream took 2.0 s where
 * the video took 1.4 s (bench, 30 ms per request).
 */
export function concurrencyOf(ctx: DownloadContext): { main: Concurrency; audio: Concurrency } {
  const { config } = ctx;
  const multithreading = ctx.job.request.use_multithreading ?? config.use_multithreading;
  const main = multithreading
    ? {
        initial: config.segment_concurrency,
        max: Math.max(config.segment_concurrency, config.segment_concurrency_max),
      }
    : { initial: 1, max: 1 };
  const audio = {
    initial: Math.max(1, Math.ceil(main.initial / 2)),
    max: Math.max(1, Math.ceil(main.max / 2)),
  };
  return { main, audio };
}

export interface TrackJobsOptions {
  ctx: DownloadContext;
  src: PlaylistSource;
  selected: Selected;
  override: KeyOverride | null;
  audioOnly: boolean;
  /** A live stream's stop signal (DELETE keeps what was recorded); null for a VOD playlist. */
  stop: AbortSignal | null;
  /** Ends the live reload loops when the job fails elsewhere. */
  over: AbortSignal;
  /** A clip's extra segments before its window, for the keyframe at or before its start. */
  preroll?: number;
}

/** What a clip or the skip rules left out of a VOD job's main track (null: nothing asked). */
export interface Selection {
  /** Timeline seconds where the first kept segment starts. */
  from: number;
  removed: Span[];
  skipped: SegmentChoice['skipped'];
  warnings: string[];
}

type TrackSpec = { which: 'main' | 'audio'; label: 'video' | 'audio'; track: Track };

/** The job's tracks, the main one first. */
export async function trackJobs(
  o: TrackJobsOptions,
): Promise<{ tracks: TrackJob[]; mainIsAudio: boolean; selection: Selection | null }> {
  const { selected } = o;
  // audio_only with a separate rendition: that rendition alone is the main track.
  const mainIsAudio = o.audioOnly && selected.audio !== null;
  const specs: TrackSpec[] = [
    mainIsAudio && selected.audio
      ? { which: 'audio', label: 'audio', track: selected.audio }
      : { which: 'main', label: 'video', track: selected.main },
  ];
  if (selected.audio && !mainIsAudio) specs.push({ which: 'audio', label: 'audio', track: selected.audio });
  const tracks: TrackJob[] = [];
  const { request } = o.ctx.job;
  const medias = specs.map((s) => s.track.media);
  const choose = o.stop ? null : chooser(request, medias, o.preroll ?? 0);
  if (o.stop && request.skip_discontinuity_runs != null)
    o.ctx.log.warn('skip_discontinuity_runs does not apply to live recordings (skip_segments does)');
  let selection: Selection | null = null;
  for (const spec of specs) {
    const file = path.join(o.ctx.tempDir, `${spec.label}.track`);
    if (!o.stop) {
      const choice = choose?.(spec.track.media) ?? null;
      if (choice && spec === specs[0]) selection = { ...choice, warnings: choose!.warnings };
      const plan = planTrack(choice?.media ?? spec.track.media, o.override);
      tracks.push({ label: spec.label, which: spec.which, plan, file, live: null });
    } else tracks.push(await liveTrack(o, spec, file, o.stop));
  }
  return { tracks, mainIsAudio, selection };
}

/** Progress totals: the plans, and what a restart found on disk. */
export function totalsOf(tracks: readonly TrackJob[]): { segments: number; bytes: number | null } {
  const known = tracks.every((t) => t.plan.knownBytes !== null);
  return {
    segments: tracks.reduce((n, t) => n + t.plan.segmentCount + (t.resume?.checkpoint?.segments ?? 0), 0),
    bytes: known ? tracks.reduce((n, t) => n + (t.plan.knownBytes ?? 0), 0) : null,
  };
}

const urlsOf = (media: MediaPlaylist) => media.segments.map((s) => urlOf(s, media.baseUrl));

/**
 * The segment choice for each track of a VOD job, or null without clip and skip rules. The skip
 * spans are decided once, on the main track (patterns and run lengths) and any other's URLs
 * (patterns), then cut out of every track: the same times go, or audio would drift from video.
 */
function chooser(request: JobRequest, medias: MediaPlaylist[], preroll: number) {
  const clip = clipRange(request);
  const rules = skipRules(request);
  if (!clip && !rules) return null;
  const warnings: string[] = [];
  const spans: Span[] = [];
  medias.forEach((media, i) => {
    if (!rules) return;
    const theRules = i === 0 ? rules : { ...rules, maxRunSeconds: null };
    const decided = skipSpans(media.segments, segmentSpans(media.segments), urlsOf(media), theRules);
    spans.push(...decided.spans);
    if (decided.warning) warnings.push(decided.warning);
  });
  return Object.assign((media: MediaPlaylist) => chooseSegments(media, clip, spans, preroll), { warnings });
}

/** A live track: recorded from where a restart's checkpoint left off, for what is left of max_duration. */
async function liveTrack(
  o: TrackJobsOptions,
  spec: TrackSpec,
  file: string,
  stop: AbortSignal,
): Promise<TrackJob> {
  const { ctx } = o;
  const request = ctx.job.request;
  const plan = emptyPlan(o.override);
  const fingerprint = `live|${new URL(spec.track.url).pathname}`;
  const checkpoint = await readCheckpoint(file, fingerprint);
  if (checkpoint) plan.lastMsn = checkpoint.lastMsn;
  const recorded = checkpoint?.seconds ?? 0;
  // skip_segments: each track leaves out the segments whose own URLs match (a live ad's video and
  // audio are served alike); run lengths are not known until a run ends.
  const patterns = skipRules(request)?.patterns ?? [];
  const recording = new LiveRecording(plan, spec.track.media, {
    reload: async () => reloadTrack(o.src, o.selected, spec.which),
    skip: patterns.length > 0 ? (url) => patterns.some((p) => p.test(url)) : undefined,
    maxDuration: request.max_duration ? Math.max(0, request.max_duration - recorded) : null,
    stop,
    signal: AbortSignal.any([ctx.signal, o.over]),
    log: ctx.log.child({ track: spec.label }),
  });
  const resume = { checkpoint, fingerprint };
  return { label: spec.label, which: spec.which, plan, file, live: recording, resume };
}
