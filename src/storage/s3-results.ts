/**
 * Finished files in the S3 bucket of storage.s3: each job's file and .vtt sidecars are uploaded to
 * `<prefix><job id>/<name>` once complete, and the job's result names them `s3://bucket/key`.
 *
 * The main file can also begin going up while it is written (begin(), progressive-upload.ts). Its key
 * must be known when that upload is created, before publishFile picks the file's final name, so it
 * is the name the job asked for (`<video_name>.mp4`); when publishFile had to pick another one
 * (`name (1).mp4`: output_path already held the name) the early upload is dropped and the file
 * uploaded whole under its final name, as before. Keys and names thus stay what they were (the
 * download is named after the key), and that fallback is rare: in S3 mode files stay in output_path
 * only while they are uploaded.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Job, JobResult } from '../jobs/types.js';
import { type RetryPolicy, withRetry } from '../net/retry.js';
import { GabeError, isAbortError, isGabeError } from '../service/errors.js';
import type { Logger } from '../service/log.js';
import { removeLocalOutput, resultFiles } from './local-results.js';
import { contentTypeOf } from './names.js';
import { ProgressiveUpload } from './progressive-upload.js';
import type { EarlyUpload, EarlyUploaded, OutputFile, ResultCheck, ResultStore } from './results.js';
import { describeS3Error, isRetryableS3Error, S3Files, type S3Settings } from './s3.js';
import { formatS3Url, parseS3Url } from './s3-url.js';

/** HeadBucket for /health must answer within this, so a dead endpoint does not hold the health check. */
const CHECK_TIMEOUT_MS = 3_000;

export interface S3ResultsOptions {
  /** Back-off between upload tries: 1 s doubling to 30 s unless a test shortens it. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class S3Results implements ResultStore {
  readonly kind = 's3' as const;
  readonly files: S3Files;
  private readonly policy: RetryPolicy;

  constructor(
    private readonly settings: S3Settings,
    private readonly outputPath: string,
    options: S3ResultsOptions = {},
  ) {
    this.files = new S3Files(settings);
    this.policy = {
      maxRetries: settings.upload_retries,
      baseDelayMs: options.baseDelayMs ?? 1_000,
      maxDelayMs: options.maxDelayMs ?? 30_000,
      // S3 asks for no Retry-After of ours: the SDK honours throttling itself before we see an error.
      maxRetryAfterMs: 0,
    };
  }

  get bucket(): string {
    return this.files.bucket;
  }

  keyFor(jobId: string, file: string): string {
    return `${this.settings.prefix}${jobId}/${path.basename(file)}`;
  }

  /**
   * Every file is uploaded before any local copy is removed, so a failure part way leaves the job's
   * files complete on disk (and the objects already sent are deleted again: no result names them).
   */
  async publish(
    jobId: string,
    result: JobResult,
    signal: AbortSignal,
    log: Logger,
    early?: EarlyUpload,
  ): Promise<JobResult> {
    const sent: string[] = [];
    try {
      const outputUrl =
        (await this.finishEarly(result.output_path, early, signal, log, sent)) ??
        (await this.uploadWithRetry(jobId, result.output_path, signal, log, sent));
      const subtitles = [];
      for (const s of result.subtitles ?? []) {
        subtitles.push({ ...s, path: await this.uploadWithRetry(jobId, s.path, signal, log, sent) });
      }
      const poster = result.thumbnail_path;
      const thumbnail = poster ? await this.uploadWithRetry(jobId, poster, signal, log, sent) : null;
      // The runner handed us these files (not a stored row), so no output_path check is needed here.
      for (const file of resultFiles(result)) await rm(file, { force: true });
      const extras = {
        ...(result.subtitles ? { subtitles } : {}),
        ...(thumbnail ? { thumbnail_path: thumbnail } : {}),
      };
      return { ...result, output_path: outputUrl, ...extras };
    } catch (err) {
      for (const key of sent) await this.files.delete(key).catch(() => {});
      throw err;
    }
  }

  /** Begins the upload of a job's main file while it is written; publish() gets the handle. */
  begin(jobId: string, file: OutputFile, signal: AbortSignal, log: Logger): EarlyUpload | null {
    const upload = new ProgressiveUpload({
      files: this.files,
      key: this.keyFor(jobId, file.publishAs),
      contentType: contentTypeOf(file.publishAs),
      headerBytes: file.headerBytes,
      signal,
      log,
    });
    upload.start(file.path);
    const bucket = this.bucket;
    return {
      async finish(finalPath: string): Promise<EarlyUploaded | null> {
        if (path.basename(finalPath) !== path.basename(file.publishAs)) {
          log.info(
            { key: upload.key, published_as: path.basename(finalPath) },
            'the file was published under another name than its early upload; uploading it whole',
          );
          await upload.abort();
          return null;
        }
        const done = await upload.finish(finalPath);
        if (!done) return null;
        const { key, bytes, earlyParts, resentParts, partsSeconds, completeSeconds } = done;
        const timings = { parts_s: partsSeconds, complete_s: completeSeconds };
        return { url: formatS3Url(bucket, key), key, bytes, earlyParts, resentParts, timings };
      },
      abort: () => upload.abort(),
    };
  }

  /**
   * The main file's upload finished from its early parts: its URL, or null when it must be uploaded
   * whole (nothing began early, the early parts cannot be used, or S3 failed while finishing).
   */
  private async finishEarly(
    file: string,
    early: EarlyUpload | undefined,
    signal: AbortSignal,
    log: Logger,
    sent: string[],
  ): Promise<string | null> {
    if (!early) return null;
    const started = performance.now();
    try {
      const done = await early.finish(file);
      if (!done) return null;
      sent.push(done.key);
      const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
      log.info(
        {
          url: done.url,
          bytes: done.bytes,
          seconds,
          early_parts: done.earlyParts,
          resent_parts: done.resentParts,
          ...done.timings,
        },
        'uploaded to S3',
      );
      return done.url;
    } catch (err) {
      await early.abort();
      if (signal.aborted) throw new GabeError('CANCELLED', 'the job was cancelled', { cause: err });
      log.warn(
        { err: describeS3Error(err) },
        'could not finish the upload begun while the file was written; uploading it whole',
      );
      return null;
    }
  }

  private async uploadWithRetry(
    jobId: string,
    file: string,
    signal: AbortSignal,
    log: Logger,
    sent: string[],
  ): Promise<string> {
    const key = this.keyFor(jobId, file);
    const url = formatS3Url(this.bucket, key);
    const started = performance.now();
    try {
      const { bytes } = await withRetry(
        async () => {
          try {
            return await this.files.upload(file, key, contentTypeOf(file), signal);
          } catch (err) {
            if (signal.aborted || isAbortError(err)) throw err;
            throw new GabeError('UPLOAD', describeS3Error(err), {
              cause: err,
              retryable: isRetryableS3Error(err),
            });
          }
        },
        this.policy,
        {
          signal,
          onRetry: (err, attempt, delayMs) =>
            log.warn(
              { url, attempt, retries: this.policy.maxRetries, delay_ms: delayMs, reason: err.message },
              'upload to S3 failed; trying again',
            ),
        },
      );
      sent.push(key);
      const seconds = (performance.now() - started) / 1000;
      log.info({ url, bytes, seconds: Number(seconds.toFixed(3)) }, 'uploaded to S3');
      return url;
    } catch (err) {
      if (isGabeError(err, 'CANCELLED')) throw err;
      const reason = isGabeError(err, 'UPLOAD') ? err.message : describeS3Error(err);
      throw new GabeError(
        'UPLOAD',
        `could not upload ${path.basename(file)} to ${url}: ${reason}; the file is kept at ${file}`,
        { cause: err, details: { local_path: file, url } },
      );
    }
  }

  /**
   * Deletes the job's objects (only keys under `<prefix><job id>/` in our bucket: a tampered row
   * cannot reach another job's files or another bucket) and any local file inside output_path (a job
   * whose upload failed keeps its file there).
   */
  async remove(job: Job): Promise<void> {
    const own = `${this.settings.prefix}${job.id}/`;
    for (const file of resultFiles(job.result)) {
      const s3 = parseS3Url(file);
      if (s3 && s3.bucket === this.bucket && s3.key.startsWith(own)) await this.files.delete(s3.key);
    }
    await removeLocalOutput(job.result, this.outputPath);
  }

  async check(): Promise<ResultCheck> {
    const base = { kind: 's3' as const, location: formatS3Url(this.bucket, this.settings.prefix) };
    try {
      await this.files.checkBucket(AbortSignal.timeout(CHECK_TIMEOUT_MS));
      return { ...base, ok: true };
    } catch (err) {
      const timedOut = (err as { name?: string }).name === 'TimeoutError' || isAbortError(err);
      const error = timedOut ? `no answer within ${CHECK_TIMEOUT_MS / 1000} s` : describeS3Error(err);
      return { ...base, ok: false, error };
    }
  }

  async close(): Promise<void> {
    this.files.close();
  }
}
