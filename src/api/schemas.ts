import { type Static, Type } from 'typebox';
import { CLIP_TIME_PATTERN } from '../jobs/clip-range.js';
import { requestHeaders } from '../net/headers.js';
import { SPEED_PATTERN } from '../net/speed.js';
import { RESOLUTION_PREFERENCE_PATTERN } from '../playlist/selection.js';

const JobStatusSchema = Type.Union(
  [
    Type.Literal('PENDING'),
    Type.Literal('PROCESSING'),
    Type.Literal('COMPLETED'),
    Type.Literal('FAILED'),
    Type.Literal('CANCELLED'),
  ],
  { description: 'PENDING → PROCESSING → COMPLETED | FAILED | CANCELLED' },
);

const OptionalNullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T, description: string) =>
  Type.Optional(Type.Union([t, Type.Null()], { description }));

export const UrlField = Type.String({
  minLength: 1,
  maxLength: 8192,
  description: 'http(s) URL to download.',
  examples: ['https://example.com/stream/master.m3u8'],
});

const VideoName = OptionalNullable(
  Type.String({ maxLength: 1000 }),
  'Output file name without extension; sanitised. Default: taken from the URL.',
);
const ProxyField = OptionalNullable(
  Type.String({ maxLength: 2048, pattern: '^(https?|socks5h?)://' }),
  'Proxy for this job (http://, https://, socks5:// or socks5h://); default: config "proxy".',
);

const CallbackUrl = OptionalNullable(
  Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://' }),
  'Webhook: the job JSON is POSTed here when it ends, signed with config "webhook_secret".',
);

const Hex128 = (description: string) =>
  OptionalNullable(Type.String({ pattern: '^(0[xX])?[0-9a-fA-F]{32}$' }), description);

/** Fields both download routes take: clip, speed limit, poster frame, container. */
const ClipTime = (description: string) =>
  OptionalNullable(
    Type.Union([
      Type.Number({ minimum: 0, maximum: 30 * 24 * 3600 }),
      Type.String({ pattern: CLIP_TIME_PATTERN, maxLength: 20 }),
    ]),
    description,
  );
const OutputFields = {
  start: ClipTime(
    'Clip: start time, seconds or "HH:MM:SS(.mmm)". Only the media covering the clip is fetched; the clip begins at the keyframe at or before it (as ffmpeg -ss with -c copy).',
  ),
  end: ClipTime('Clip: end time, seconds or "HH:MM:SS(.mmm)"; default: the end of the media.'),
  max_speed: OptionalNullable(
    Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: SPEED_PATTERN, maxLength: 20 })]),
    'Download speed limit for this job, bytes per second across all its connections: a number or "500K", "5M", "1.5G" (powers of 1024).',
  ),
  thumbnail: OptionalNullable(Type.Boolean(), 'Also save a poster frame (JPEG) beside the file.'),
  container: OptionalNullable(
    Type.Union([Type.Literal('mp4'), Type.Literal('mkv')]),
    'Output container: "mp4" (default) or "mkv" (remuxed by ffmpeg).',
  ),
};

export const HlsDownloadBody = Type.Object(
  {
    url: UrlField,
    resolution: OptionalNullable(
      Type.String({ pattern: RESOLUTION_PREFERENCE_PATTERN }),
      '"WxH" (e.g. "1920x1080"), "720p", "best" or "worst". Closest below is chosen when absent, then closest above.',
    ),
    use_multithreading: OptionalNullable(Type.Boolean(), 'Fetch segments concurrently; default: config.'),
    proxy: ProxyField,
    video_name: VideoName,
    callback_url: CallbackUrl,
    headers: Type.Optional(
      requestHeaders(
        'HTTP headers for every fetch of this job (e.g. Referer, User-Agent, Cookie), over config "headers".',
      ),
    ),
    key: Hex128(
      'AES-128 key (32 hex digits) for every encrypted segment, instead of fetching the key URIs (for streams whose key URL needs out-of-band auth).',
    ),
    iv: Hex128(
      "AES-128 IV (32 hex digits) for every encrypted segment, instead of the playlist's or the sequence number.",
    ),
    audio_language: OptionalNullable(
      Type.String({ minLength: 1, maxLength: 35 }),
      'Audio rendition to use, by language ("en", "pt-BR"); default: the DEFAULT rendition.',
    ),
    audio_only: OptionalNullable(Type.Boolean(), 'Download only the audio, into an .m4a file.'),
    subtitles: OptionalNullable(
      Type.Boolean(),
      'Fetch WebVTT subtitle renditions into the MP4 (mov_text) and a .vtt beside it; default true.',
    ),
    subtitle_languages: OptionalNullable(
      Type.Array(Type.String({ minLength: 1, maxLength: 35 }), { maxItems: 50 }),
      'Only these subtitle languages ("en", "fr"); default: all.',
    ),
    max_duration: OptionalNullable(
      Type.Number({ exclusiveMinimum: 0, maximum: 7 * 24 * 3600 }),
      'Live streams: stop recording after this many seconds (the job then completes with the recording).',
    ),
    skip_segments: OptionalNullable(
      Type.Array(Type.String({ minLength: 1, maxLength: 500 }), { maxItems: 50 }),
      'Segments whose URL matches any of these regular expressions are skipped (ads, filler); the skipped time is reported in the result.',
    ),
    skip_discontinuity_runs: OptionalNullable(
      Type.Number({ exclusiveMinimum: 0, maximum: 3600 }),
      'Skip every run of segments between discontinuities (or DASH periods) lasting at most this many seconds, as ad breaks are.',
    ),
    ...OutputFields,
  },
  { additionalProperties: false },
);
export type HlsDownloadBody = Static<typeof HlsDownloadBody>;

export const Mp4DownloadBody = Type.Object(
  {
    url: UrlField,
    video_name: VideoName,
    type: OptionalNullable(Type.Literal('mp4'), 'Output container; only "mp4".'),
    proxy: ProxyField,
    callback_url: CallbackUrl,
    headers: Type.Optional(
      requestHeaders(
        'HTTP headers for every fetch of this job (e.g. Referer, User-Agent, Cookie), over config "headers".',
      ),
    ),
    ...OutputFields,
  },
  { additionalProperties: false },
);
export type Mp4DownloadBody = Static<typeof Mp4DownloadBody>;

const NullableNumber = (description: string) => Type.Union([Type.Number(), Type.Null()], { description });
const NullableString = (description: string) => Type.Union([Type.String(), Type.Null()], { description });

export const JobResultSchema = Type.Object({
  status: Type.String(),
  output_path: Type.String({ description: 'Absolute path of the finished file.' }),
  resolution: NullableString('Resolution of the downloaded video ("WxH").'),
  video_name: Type.String(),
  original_url: Type.String(),
  file_size_mb: Type.Number(),
  file_size_bytes: Type.Integer(),
  duration_seconds: NullableNumber('Duration of the output, from ffprobe.'),
  segment_count: Type.Union([Type.Integer(), Type.Null()]),
  container: Type.String({
    description:
      '"mp4", or "m4a" for audio_only; the source container for MP4 URLs; "mkv" ("mka" for audio_only) with container "mkv".',
  }),
  subtitles: Type.Optional(
    Type.Array(
      Type.Object({
        language: Type.Union([Type.String(), Type.Null()]),
        name: Type.String(),
        path: Type.String({ description: 'The sidecar .vtt beside the output.' }),
        cues: Type.Integer(),
      }),
      { description: 'Subtitle renditions muxed into the MP4 (mov_text), each also written as a .vtt.' },
    ),
  ),
  thumbnail_path: Type.Optional(
    Type.String({
      description:
        'The poster frame (JPEG) beside the output, with thumbnail: true; GET /job/{id}/thumbnail.',
    }),
  ),
  warnings: Type.Optional(
    Type.Array(Type.String(), {
      description:
        "Notes on a complete file: the playlist's EXTINF durations differ much from the media's, frames left out after damage in transport (lost MPEG-TS packets), audio and video far apart in time.",
    }),
  ),
  clip: Type.Optional(
    Type.Object(
      { start: Type.Number(), end: Type.Union([Type.Number(), Type.Null()]) },
      {
        description:
          'A clip by time: the requested start and end in seconds (end null: to the end). The clip starts at the keyframe at or before start, like ffmpeg -ss with -c copy.',
      },
    ),
  ),
  live: Type.Optional(
    Type.Object(
      {
        ended: Type.Union([
          Type.Literal('endlist'),
          Type.Literal('max_duration'),
          Type.Literal('stopped'),
          Type.Literal('stalled'),
        ]),
        missed_segments: Type.Integer(),
      },
      {
        description:
          'Live recordings: why the recording ended (EXT-X-ENDLIST, max_duration, DELETE, or a playlist that stopped changing) and segments that left the window unrecorded.',
      },
    ),
  ),
  skipped: Type.Optional(
    Type.Object(
      { segments: Type.Integer(), seconds: Type.Number() },
      { description: 'Segments left out by skip_segments / skip_discontinuity_runs, and their seconds.' },
    ),
  ),
  source_format: Type.Optional(
    Type.Union([Type.Literal('hls'), Type.Literal('dash')], {
      description: 'Manifest jobs: whether the URL was an HLS playlist or an MPEG-DASH MPD.',
    }),
  ),
});

export const JobSchema = Type.Object({
  job_id: Type.String({ format: 'uuid' }),
  type: Type.Union([Type.Literal('hls'), Type.Literal('mp4')]),
  status: JobStatusSchema,
  created_at: Type.String({ format: 'date-time' }),
  started_at: NullableString('When the job first started processing.'),
  completed_at: NullableString('When the job reached a final state.'),
  result: Type.Union([JobResultSchema, Type.Null()]),
  error: NullableString('Why the job failed, in plain words.'),
  error_code: NullableString('Stable GABE_ERR_* code of the failure.'),
  progress: Type.Number({ minimum: 0, maximum: 100 }),
  total_segments: Type.Integer(),
  downloaded_segments: Type.Integer(),
  downloaded_bytes: Type.Integer(),
  total_bytes: Type.Union([Type.Integer(), Type.Null()]),
  speed_bps: Type.Number({ description: 'Bytes per second over the last seconds.' }),
  eta_seconds: NullableNumber('Estimated seconds left.'),
  recorded_seconds: NullableNumber('Live recordings: seconds of media recorded so far (null otherwise).'),
  original_url: Type.String(),
  video_name: Type.String(),
  resolution: NullableString('Resolution requested (or chosen, once known).'),
});
export type JobResponse = Static<typeof JobSchema>;

export const ErrorSchema = Type.Object({
  detail: Type.Unknown({ description: 'What went wrong (a list of field errors for 422).' }),
  code: Type.String({ description: 'Stable GABE_ERR_* code.' }),
});

export const JobParams = Type.Object({ job_id: Type.String({ maxLength: 100 }) });

/** Largest `offset` GET /jobs accepts. */
export const MAX_OFFSET = 1_000_000_000;

export const ListQuery = Type.Object(
  {
    status: Type.Optional(JobStatusSchema),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    // Bounded: a number past 2^53 is no integer SQLite can bind (it answered 500); no store holds a
    // billion jobs, so a larger offset can only ever be an empty page.
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_OFFSET, default: 0 })),
    // Read by the API-key check (auth.ts) on any GET; listed so it is not an unknown field here.
    api_key: Type.Optional(
      Type.String({ maxLength: 512, description: 'API key, for clients that cannot send headers.' }),
    ),
  },
  { additionalProperties: false },
);

export const JobList = Type.Object({
  jobs: Type.Array(JobSchema),
  total: Type.Integer(),
  limit: Type.Integer(),
  offset: Type.Integer(),
});

export type JobListResponse = Static<typeof JobList>;

const Check = Type.Object({ ok: Type.Boolean() }, { additionalProperties: true });
export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('error')]),
  version: Type.String(),
  ffmpeg: Check,
  database: Check,
  disk: Check,
  storage: Check,
  queue: Type.Object({ pending: Type.Integer(), processing: Type.Integer(), accepting: Type.Boolean() }),
});

export const errorResponses = {
  404: ErrorSchema,
  422: ErrorSchema,
  429: ErrorSchema,
  500: ErrorSchema,
  503: ErrorSchema,
} as const;
