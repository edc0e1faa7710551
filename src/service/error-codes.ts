/**
 * The error registry: every stable code (`GABE_ERR_<KIND>`), its HTTP status, whether it is retried by
 * default, and what it means. Codes are part of the public contract: never rename one. The error table
 * in docs/api.md is generated from this (npm run docs).
 */

export const ErrorCodes = {
  VALIDATION: {
    status: 422,
    retryable: false,
    description:
      'A request field is missing, of the wrong type or unknown, or the body is empty or not JSON; `detail` lists each bad field.',
  },
  BAD_REQUEST: {
    status: 400,
    retryable: false,
    description:
      'A request Gabe cannot take: an unparsed body type (415), a malformed path (400), a path parameter too long (414), or a range of the file that cannot be satisfied (416).',
  },
  NOT_FOUND: {
    status: 404,
    retryable: false,
    description:
      'An unknown route, or a job without a file to serve: not completed yet (409) or its file gone from disk (410).',
  },
  JOB_NOT_FOUND: {
    status: 404,
    retryable: false,
    description: 'No job with this id, or one that belongs to another API key.',
  },
  RATE_LIMITED: {
    status: 429,
    retryable: false,
    description:
      'Too many submissions (or probes) from this client in a minute (rate_limit_per_minute); retry after Retry-After.',
  },
  IP_LIMIT: {
    status: 429,
    retryable: false,
    description: 'This client IP already has max_jobs_per_ip jobs pending or processing.',
  },
  KEY_LIMIT: {
    status: 429,
    retryable: false,
    description: 'This API key already has max_jobs_per_key jobs pending or processing.',
  },
  QUEUE_FULL: {
    status: 503,
    retryable: false,
    description: 'max_queue_size jobs are already pending; retry after Retry-After.',
  },
  SHUTTING_DOWN: {
    status: 503,
    retryable: false,
    description: 'The service is shutting down and takes no new jobs; retry after Retry-After.',
  },
  BODY_TOO_LARGE: { status: 413, retryable: false, description: 'The request body is larger than 1 MB.' },
  NOT_IMPLEMENTED: { status: 501, retryable: false, description: 'No downloader for this job type.' },
  UNAUTHORIZED: {
    status: 401,
    retryable: false,
    description: 'api_keys is set and the request carries no API key, or one that is not valid.',
  },
  INVALID_URL: { status: 422, retryable: false, description: 'The URL is not a valid http(s) URL.' },
  FORBIDDEN_DESTINATION: {
    status: 400,
    retryable: false,
    description:
      'The URL, callback_url, proxy or a redirect points at a private or local address the destination guard refuses.',
  },
  CONFIG: {
    status: 500,
    retryable: false,
    description:
      'The configuration is invalid (an unknown key, a wrong type or a bad value); the message names the key.',
  },
  FFMPEG_MISSING: {
    status: 500,
    retryable: false,
    description: 'ffmpeg or ffprobe was not found (PATH, ffmpeg_path, the bundled build).',
  },
  FFMPEG: {
    status: 500,
    retryable: false,
    description: 'ffmpeg or ffprobe could not be started or ended without doing its work.',
  },
  // Network and origin failures. `retryable` here is the default; the retry policy decides per status.
  NETWORK: {
    status: 502,
    retryable: true,
    description:
      'The origin could not be reached or reset the connection (a name that does not resolve or a certificate that does not verify is not retried).',
  },
  TIMEOUT: {
    status: 504,
    retryable: true,
    description:
      'The origin was too slow: nothing for connection_timeout seconds, or a body below low_speed_limit for low_speed_time; the message names the limit.',
  },
  HTTP_STATUS: {
    status: 502,
    retryable: false,
    description:
      'The origin answered with an error status (the message says which); 408, 429 and 5xx but 501 and 505 are retried.',
  },
  TRUNCATED: {
    status: 502,
    retryable: true,
    description:
      'The origin sent less than its Content-Length or byte range, or an empty body where media belongs.',
  },
  TOO_MANY_REDIRECTS: {
    status: 502,
    retryable: false,
    description: 'The origin redirected more than 10 times.',
  },
  PROXY: {
    status: 502,
    retryable: false,
    description: 'The proxy is not a usable URL, has an unsupported scheme, or failed to connect.',
  },
  NOT_A_VIDEO: {
    status: 422,
    retryable: false,
    description:
      'The URL served something that is not a video (an HTML page, a JSON error, a file without a video or audio stream).',
  },
  NOT_A_PLAYLIST: {
    status: 422,
    retryable: false,
    description:
      'The URL served something that is not an HLS playlist, or a playlist that cannot be parsed or lists no segments.',
  },
  PLAYLIST_TOO_LARGE: {
    status: 422,
    retryable: false,
    description: 'The playlist is larger than its byte or entry limit.',
  },
  DRM: {
    status: 422,
    retryable: false,
    description:
      'The stream is DRM-protected (SAMPLE-AES, FairPlay, ...) or uses an encryption method other than clear-key AES-128.',
  },
  LIVE_UNSUPPORTED: {
    status: 422,
    retryable: false,
    description: 'Not raised any more (live streams are recorded); kept because codes are never removed.',
  },
  NO_VARIANT: { status: 422, retryable: false, description: 'The master playlist has no playable variant.' },
  KEY: {
    status: 502,
    retryable: false,
    description: 'An AES-128 key or IV is invalid, or the key could not be fetched.',
  },
  SEGMENT: {
    status: 502,
    retryable: false,
    description:
      'A segment could not be fetched (after its retries), is an HTML page or a playlist instead of media, or expired and left the playlist.',
  },
  INTEGRITY: {
    status: 502,
    retryable: false,
    description:
      'The result is not sound: the file changed on the server during the download, or the merged file has no duration or lacks a track the download had.',
  },
  DISK_FULL: {
    status: 507,
    retryable: false,
    description: 'No space left on the device for temp_path or output_path.',
  },
  STORAGE: {
    status: 500,
    retryable: false,
    description:
      'A file could not be written where it belongs (outside output_path, too many files of one name, a short write or read), or S3 could not be reached to serve a finished file (503, with Retry-After).',
  },
  CANCELLED: {
    status: 409,
    retryable: false,
    description: 'The job was cancelled (DELETE, or Ctrl-C in gabe download).',
  },
  INTERNAL: {
    status: 500,
    retryable: false,
    description: 'An unexpected error inside Gabe; the log has the details.',
  },
  // RFC 9110 15.5.20: a request for an authority (Host) the server does not answer for.
  HOST_NOT_ALLOWED: {
    status: 421,
    retryable: false,
    description: 'The Host header names a host this service does not answer for (allowed_hosts).',
  },
  // Too many event streams open, for the client or for the service.
  STREAMS_FULL: {
    status: 503,
    retryable: true,
    description:
      'max_event_streams_per_client or max_event_streams event streams are already open; retry after Retry-After.',
  },
  // A job the service died under max_attempts times (it may be what brings the process down).
  ATTEMPTS: {
    status: 500,
    retryable: false,
    description: 'The service died during this job max_attempts times; it is not started again.',
  },
  // The origin (or a proxy on the way) broke HTTP/1.1: bad framing, an oversized head, not HTTP at all,
  // too many interim responses. Its fault, not ours; a flaky edge that sends garbage once is retried.
  PROTOCOL: {
    status: 502,
    retryable: true,
    description:
      'The origin broke HTTP/1.1: not HTTP, bad framing, a head or trailer section over 64 KB, more than 10 interim responses.',
  },
  // S3 (storage.s3.bucket) refused or could not be reached for upload_retries tries; the file is kept.
  UPLOAD: {
    status: 502,
    retryable: false,
    description:
      'A finished file could not be uploaded to S3 (storage.s3) after upload_retries retries; the message says why. The job is FAILED and the file stays in output_path (`result.output_path`) until the job is deleted.',
  },
} as const satisfies Record<string, { status: number; retryable: boolean; description: string }>;

export type ErrorKind = keyof typeof ErrorCodes;
