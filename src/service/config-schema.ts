/**
 * The TypeBox schema of config.json: every key, its type, default and description. The docs
 * generator and /docs read it; config.ts loads and validates a configuration against it.
 */
import { Type } from 'typebox';
import { requestHeaders } from '../net/headers.js';
import { SPEED_PATTERN } from '../net/speed.js';
import { RESOLUTION_PREFERENCE_PATTERN } from '../playlist/selection.js';
import { QueueSchema, StorageSchema } from './config-scale-schema.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T, description: string) =>
  Type.Union([t, Type.Null()], { default: null, description });

/**
 * config.json: every key of the original specification with its meaning unchanged, plus Gabe's own.
 * Units are in the descriptions because users read this schema through the README and /docs.
 */
export const ConfigSchema = Type.Object(
  {
    temp_path: Type.String({
      minLength: 1,
      default: 'temp',
      description: 'Folder for partial downloads (one sub-folder per job).',
    }),
    output_path: Type.String({
      minLength: 1,
      default: 'downloads',
      description: 'Folder for finished files.',
    }),
    default_resolution: Nullable(
      Type.String({ pattern: RESOLUTION_PREFERENCE_PATTERN }),
      'Resolution used when a request names none ("1920x1080", "720p", "best", "worst"); null = highest bandwidth.',
    ),
    use_multithreading: Type.Boolean({
      default: true,
      description:
        'Fetch HLS segments concurrently (segment_concurrency at a time) unless a request says otherwise.',
    }),
    segment_concurrency: Type.Integer({
      minimum: 1,
      maximum: 256,
      default: 16,
      description:
        'Segments fetched at once per job when multithreading is on, to start with: Gabe raises it while throughput grows, up to segment_concurrency_max.',
    }),
    segment_concurrency_max: Type.Integer({
      minimum: 1,
      maximum: 256,
      default: 64,
      description:
        'Most segments fetched at once per job; the same as segment_concurrency keeps the number fixed. A 429 or 503 from the origin halves it.',
    }),
    mp4_connections: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 16,
      description:
        'Connections used at once for one MP4 download (parallel byte ranges) when the server supports Range, to start with: Gabe adds more while throughput grows, up to mp4_connections_max; 1 = a single stream.',
    }),
    mp4_connections_max: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 32,
      description:
        'Most connections for one MP4 download; the same as mp4_connections keeps the number fixed. A 429 or 503 from the origin halves it.',
    }),
    max_concurrent_downloads: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 5,
      description: 'Jobs PROCESSING at once.',
    }),
    max_queue_size: Type.Integer({
      minimum: 0,
      default: 100,
      description: 'PENDING jobs at most; a submission beyond it gets 503.',
    }),
    proxy: Nullable(
      Type.String({ pattern: '^(https?|socks5h?)://' }),
      'Proxy for every fetch (http://, https://, socks5:// or socks5h:// to resolve names at the proxy); a request may name its own.',
    ),
    chunk_size: Type.Integer({
      minimum: 1024,
      maximum: 64 * 1024 * 1024,
      default: 1048576,
      description: 'Bytes written to disk at a time when streaming a download.',
    }),
    max_retries: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 3,
      description: 'Retries of a failed request (network error, 408, 429, 5xx), with exponential back-off.',
    }),
    connection_timeout: Type.Number({
      exclusiveMinimum: 0,
      maximum: 3600,
      default: 10,
      description:
        'Seconds to connect; to receive the whole response head (interim 1xx responses included) after the request is sent, and a trailer section after the last chunk; and at most between two reads of a body.',
    }),
    ffmpeg_path: Nullable(
      Type.String({ minLength: 1 }),
      'ffmpeg binary, or the folder holding ffmpeg and ffprobe; null = search PATH, then the build bundled in @ffmpeg-installer (a warning is logged).',
    ),
    native_remux: Type.Boolean({
      default: true,
      description:
        'Remux H.264/AAC MPEG-TS and fMP4 (any codec) streams to MP4 in-process while they download (no ffmpeg process); other streams, and false, use ffmpeg.',
    }),
    tag_files: Type.Boolean({
      default: true,
      description:
        "Write the job's video_name (title) and source URL (without query string, credentials masked) into each file; false keeps an MP4 job's file byte-identical to the origin's.",
    }),
    clean_jobs_after_days: Type.Number({
      minimum: 0,
      default: 7,
      description: 'Finished jobs older than this are deleted with their files; 0 keeps them forever.',
    }),
    max_jobs_per_ip: Type.Integer({
      minimum: 0,
      default: 5,
      description: 'PENDING or PROCESSING jobs per client IP; a submission beyond it gets 429; 0 = no limit.',
    }),
    host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address the API listens on.' }),
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 8000,
      description: 'Port the API listens on.',
    }),
    database_path: Type.String({ minLength: 1, default: 'gabe.db', description: 'SQLite job store file.' }),
    log_path: Type.String({
      minLength: 1,
      default: 'logs',
      description: 'Folder for video_downloader.log (rotated at 1 MB, 5 kept).',
    }),
    allow_private_networks: Type.Boolean({
      default: false,
      description:
        'Allow fetching from non-public addresses: loopback, private, link-local, CGNAT, unique-local and the other special-purpose ranges the destination guard refuses.',
    }),
    api_keys: Type.Union(
      [Type.Array(Type.String({ minLength: 16, maxLength: 512 }), { minItems: 1 }), Type.Null()],
      {
        default: null,
        description:
          'API keys (16+ characters). When set, every route but /health and the web page (its own files) needs `Authorization: Bearer KEY` or `X-API-Key: KEY`, and a key sees only its own jobs.',
      },
    ),
    max_jobs_per_key: Type.Integer({
      minimum: 0,
      default: 10,
      description: 'PENDING or PROCESSING jobs per API key; a submission beyond it gets 429; 0 = no limit.',
    }),
    rate_limit_per_minute: Type.Integer({
      minimum: 0,
      default: 120,
      description:
        'Job submissions per client (API key, else IP) per minute, both download routes together (probes: a budget of their own of the same size); more get 429; 0 = no limit.',
    }),
    webhook_secret: Type.Union([Type.String({ minLength: 16 }), Type.Null()], {
      default: null,
      description:
        'Secret for signing webhooks: X-Gabe-Signature is sha256=HMAC-SHA256(secret, "<X-Gabe-Timestamp>.<body>").',
    }),
    headers: requestHeaders(
      "HTTP headers sent with every fetch (e.g. a User-Agent or Referer a CDN insists on); a request's own `headers` add to and override these.",
      { default: {} },
    ),
    trust_proxy: Type.Union(
      [
        Type.Boolean(),
        Type.Integer({ minimum: 1, maximum: 32 }),
        Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 256 }),
      ],
      {
        default: false,
        description:
          'Proxies whose X-Forwarded-For entries are believed: false = none (the peer is the client); a number of hops (true = 1, the usual single reverse proxy); or a list of proxy addresses and CIDR ranges ("10.0.0.0/8", "loopback"). The client is the address the last trusted proxy saw.',
      },
    ),
    allowed_hosts: Type.Union(
      [
        Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { minItems: 1, maxItems: 256 }),
        Type.Null(),
      ],
      {
        default: null,
        description:
          'Host names and addresses the API answers for (the Host header, port ignored), against DNS rebinding; others get 421. "*" = any. null = when host is a loopback address: localhost, 127.0.0.1, [::1] and host; otherwise any. /health answers under any name.',
      },
    ),
    max_event_streams: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 1000,
      description:
        'Event streams (GET /events, GET /job/{id}/events) open at once in total; more get 503. Each holds a socket (a file descriptor) for as long as the client stays.',
    }),
    max_event_streams_per_client: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 20,
      description:
        'Event streams open at once per client (API key, else IP); more get 503. Enough for a few browser tabs of the web page, each with one /events stream.',
    }),
    max_attempts: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 3,
      description:
        'Starts of a job at most: a job found PROCESSING at start-up (the service died while it ran: a crash, an out-of-memory kill, a power loss) that has started this many times fails with GABE_ERR_ATTEMPTS instead of running again.',
    }),
    // curl's --speed-limit / --speed-time (CURLOPT_LOW_SPEED_LIMIT/_TIME), per connection.
    low_speed_limit: Type.Integer({
      minimum: 0,
      maximum: 1024 * 1024 * 1024,
      default: 1024,
      description:
        'Bytes per second a response body must average over each low_speed_time window, per connection; a slower one fails (GABE_ERR_TIMEOUT) and is retried; 0 = no floor.',
    }),
    low_speed_time: Type.Number({
      exclusiveMinimum: 0,
      maximum: 3600,
      default: 30,
      description: 'Seconds of the window over which low_speed_limit is measured.',
    }),
    max_total_speed: Type.Union(
      [Type.Integer({ minimum: 1 }), Type.String({ pattern: SPEED_PATTERN, maxLength: 20 }), Type.Null()],
      {
        default: null,
        description:
          'Bytes per second all jobs of this process read together at most, as a number or with a K/M/G suffix (powers of 1024), e.g. "20M"; null = no limit. Jobs share it in turns; a job\'s own max_speed applies within it. Per process: in a cluster each `gabe worker` has this budget of its own.',
      },
    ),
    queue: QueueSchema,
    storage: StorageSchema,
  },
  { additionalProperties: false },
);
