/** Job states and the transitions allowed between them: the one place that says what may follow what. */
export const JobStatus = {
  PENDING: 'PENDING',
  PROCESSING: 'PROCESSING',
  COMPLETED: 'COMPLETED',
  FAILED: 'FAILED',
  CANCELLED: 'CANCELLED',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const FINAL_STATUSES: readonly JobStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];
export const ACTIVE_STATUSES: readonly JobStatus[] = ['PENDING', 'PROCESSING'];

const TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  // PENDING → PENDING is not listed: a restart re-queues PROCESSING jobs, never PENDING ones twice.
  PENDING: ['PROCESSING', 'CANCELLED', 'FAILED'],
  // PROCESSING → PENDING happens when the service restarts (or shuts down) mid-job: it will resume.
  PROCESSING: ['COMPLETED', 'FAILED', 'CANCELLED', 'PENDING'],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
};

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isFinal(status: JobStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

export type JobType = 'hls' | 'mp4';

/** What the client asked for; stored verbatim so a restarted job runs exactly the same request. */
export interface JobRequest {
  url: string;
  video_name?: string | null;
  resolution?: string | null;
  use_multithreading?: boolean | null;
  proxy?: string | null;
  type?: string | null;
  /** Webhook: POSTed the job JSON when it reaches a final state. */
  callback_url?: string | null;
  /** Sent with every fetch of the job, over config `headers`. */
  headers?: Record<string, string> | null;
  /** AES-128 key and IV (hex) overriding the playlist's key URIs and IVs. */
  key?: string | null;
  iv?: string | null;
  audio_language?: string | null;
  audio_only?: boolean | null;
  subtitles?: boolean | null;
  subtitle_languages?: string[] | null;
  /** Live streams: seconds to record at most. */
  max_duration?: number | null;
  /** Clip by time: seconds or "HH:MM:SS(.mmm)" (jobs/clip-range.ts). */
  start?: number | string | null;
  end?: number | string | null;
  /** Bytes per second across all of this job's connections: a number, or "500K", "5M", "1.5G". */
  max_speed?: number | string | null;
  /** Segments whose URL matches any of these regular expressions are not downloaded (ads, filler). */
  skip_segments?: string[] | null;
  /** Skip every discontinuity-bounded run of segments lasting at most this many seconds (ad breaks). */
  skip_discontinuity_runs?: number | null;
  /** Save a poster frame (JPEG) beside the output. */
  thumbnail?: boolean | null;
  /** Output container: mp4 (default) or mkv. */
  container?: 'mp4' | 'mkv' | null;
}

export interface JobResult {
  status: 'completed';
  output_path: string;
  resolution: string | null;
  video_name: string;
  original_url: string;
  file_size_mb: number;
  file_size_bytes: number;
  duration_seconds: number | null;
  segment_count: number | null;
  container: string;
  /** WebVTT renditions muxed as mov_text, each also delivered as a .vtt beside the output. */
  subtitles?: { language: string | null; name: string; path: string; cues: number }[];
  /** The poster frame (JPEG) beside the output, with `thumbnail: true` and a video stream. */
  thumbnail_path?: string;
  /**
   * What the file should be read with, though it is complete: the playlist's durations differ from
   * the media's, frames left out after damage in transport, tracks far apart in time.
   */
  warnings?: string[];
  /** A clip by time: the request's start and end in seconds (end null: to the end of the media). */
  clip?: { start: number; end: number | null };
  /** Live recordings: why the recording ended, and segments that left the window unrecorded. */
  live?: { ended: 'endlist' | 'max_duration' | 'stopped' | 'stalled'; missed_segments: number };
  /** Segments left out by skip_segments / skip_discontinuity_runs, and their EXTINF seconds. */
  skipped?: { segments: number; seconds: number };
  /** Manifest jobs: an HLS playlist or an MPEG-DASH MPD (both go through the HLS pipeline). */
  source_format?: 'hls' | 'dash';
}

export interface JobProgress {
  progress: number;
  total_segments: number;
  downloaded_segments: number;
  downloaded_bytes: number;
  total_bytes: number | null;
  speed_bps: number;
  eta_seconds: number | null;
  /** Live recordings: seconds of media recorded so far (null for other jobs). */
  recorded_seconds: number | null;
}

export interface Job extends JobProgress {
  id: string;
  seq: number;
  type: JobType;
  status: JobStatus;
  request: JobRequest;
  client_ip: string;
  video_name: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
  result: JobResult | null;
  error: string | null;
  error_code: string | null;
  attempts: number;
  /** SHA-256 of the API key that submitted the job, or null without keys. */
  owner: string | null;
}
