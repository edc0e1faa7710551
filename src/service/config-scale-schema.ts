/**
 * The config keys of a cluster: `queue` (Redis and BullMQ) and `storage` (S3). Both objects default to
 * everything off, so the embedded service needs neither; see docs/deploy.md.
 */
import { Type } from 'typebox';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T, description: string) =>
  Type.Union([t, Type.Null()], { default: null, description });

export const QueueSchema = Type.Object(
  {
    redis_url: Nullable(
      Type.String({ pattern: '^rediss?://' }),
      'Redis URL (redis://[user:pass@]host:port[/db], rediss:// for TLS). Set: jobs are stored and queued in Redis through BullMQ, and any number of `gabe serve` and `gabe worker` processes share them; null = the embedded SQLite store and in-process workers. Give Redis persistence (appendonly yes) and maxmemory-policy noeviction.',
    ),
    prefix: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9_.-]+$',
      default: 'gabe',
      description:
        'Prefix of every Redis key and channel Gabe and BullMQ use, so several Gabe clusters can share one Redis.',
    }),
    lock_duration_ms: Type.Integer({
      minimum: 1000,
      maximum: 3_600_000,
      default: 30_000,
      description:
        "Milliseconds a worker's hold on a running job lasts unless renewed (it renews every half of it): a worker that dies (kill -9, a lost host) leaves its job to another after about this long plus stalled_interval_ms.",
    }),
    stalled_interval_ms: Type.Integer({
      minimum: 500,
      maximum: 3_600_000,
      default: 30_000,
      description:
        'Milliseconds between the checks each worker makes for jobs whose worker died (BullMQ stalled jobs); they go back to the queue and resume or restart.',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const StorageSchema = Type.Object(
  {
    s3: Type.Object(
      {
        bucket: Nullable(
          Type.String({ minLength: 3, maxLength: 63 }),
          'S3 bucket for finished files. Set: each finished file (and its .vtt sidecars) is uploaded to s3://bucket/<prefix><job id>/<name> (an MP4 the in-process remux writes goes up part by part while it is written) and removed from output_path; null = files stay in output_path.',
        ),
        endpoint: Nullable(
          Type.String({ pattern: '^https?://' }),
          'S3 endpoint of an S3-compatible store (MinIO, Ceph, R2, a local server); null = AWS S3 of `region`.',
        ),
        region: Type.String({ minLength: 1, default: 'us-east-1', description: 'S3 region.' }),
        prefix: Type.String({
          maxLength: 512,
          default: '',
          description: 'Key prefix for uploaded files ("gabe/" puts them under gabe/<job id>/).',
        }),
        access_key_id: Nullable(
          Type.String({ minLength: 1 }),
          'S3 access key; null = the usual AWS sources (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or container role).',
        ),
        secret_access_key: Nullable(
          Type.String({ minLength: 1 }),
          'S3 secret key, with access_key_id; null = the usual AWS sources.',
        ),
        force_path_style: Type.Boolean({
          default: false,
          description:
            'Address the bucket in the path (endpoint/bucket/key) rather than the host name (bucket.endpoint/key): most S3-compatible servers need true.',
        }),
        presign: Type.Boolean({
          default: false,
          description:
            'GET /job/{id}/file answers 302 to a presigned S3 URL (the client fetches from S3) instead of streaming the object through the API.',
        }),
        presign_expires_seconds: Type.Integer({
          minimum: 1,
          maximum: 604_800,
          default: 3600,
          description: 'Lifetime of a presigned URL, seconds.',
        }),
        upload_retries: Type.Integer({
          minimum: 0,
          maximum: 100,
          default: 5,
          description:
            'Retries of a failed upload, with exponential back-off (1 s doubling to 30 s); then the job fails with GABE_ERR_UPLOAD and its file stays in output_path.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);
