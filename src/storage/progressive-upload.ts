/**
 * A multipart upload to S3 that begins while its file is still being written. The in-process MP4
 * writer (pipeline/mux/in-process.ts) appends its samples once and strictly in order and rewrites only
 * its head when it finishes, so every part past the head can go up as soon as the file has grown past
 * it; once the file is finished only the head and the tail are left to send.
 *
 * Sending early is a bet that those bytes will not change, and finish() checks the bet before it
 * completes the object: the finished file must be the very inode that was read (held open, so its
 * number cannot be reused), and every early part's CRC-32 is compared with the finished file's bytes
 * over the same range; a part that differs goes up again. When the bet cannot be checked (the file was
 * replaced, a part failed, too little went up early) finish() aborts the multipart upload and returns
 * null, and the caller uploads the finished file whole, as without this. A wrong object is the one
 * outcome this must never produce; a slower upload is fine.
 */
import { crc32 } from 'node:zlib';
import type { Logger } from '../service/log.js';
import { GrowingFile } from './growing-file.js';
import {
  finalParts,
  fullPart,
  headPartEnd,
  lastFullPart,
  MIN_PART_SIZE,
  type PartRange,
} from './part-plan.js';
import { describeS3Error, type S3Files } from './s3.js';
import { eachLimited, S3Multipart } from './s3-multipart.js';

export interface ProgressiveUploadOptions {
  files: S3Files;
  key: string;
  contentType: string;
  /** Bytes at the file's start that the writer rewrites when it finishes (they go up last, in part 1). */
  headerBytes: number;
  /** The job's signal: aborting it aborts the upload. */
  signal: AbortSignal;
  log: Logger;
  /** 8 MiB; at least S3's 5 MiB. */
  partSize?: number;
  /** How often the file's size is looked at, ms (150). */
  pollMs?: number;
  /** Parts in flight at once (3): the bytes held are this many parts. */
  queueSize?: number;
}

export interface ProgressiveResult {
  key: string;
  bytes: number;
  etag: string | null;
  /** Parts sent while the file was written and kept as they were. */
  earlyParts: number;
  /** Parts sent early whose bytes had changed by the end, sent again. */
  resentParts: number;
  /** Seconds finish() spent on the last parts (checks included) and on CompleteMultipartUpload. */
  partsSeconds: number;
  completeSeconds: number;
}

/** A part that went up early: its range, S3's ETag and the CRC-32 of the bytes sent. */
type SentPart = { range: PartRange; etag: string; crc: number };

const seconds = (ms: number) => Math.round(ms) / 1000;

type State = 'idle' | 'running' | 'finishing' | 'done' | 'aborted';

export class ProgressiveUpload {
  readonly key: string;
  private readonly partSize: number;
  private readonly headEnd: number;
  private readonly pollMs: number;
  private readonly queueSize: number;
  /** Aborts the requests in flight when the upload is dropped. */
  private readonly stop = new AbortController();
  private readonly sent = new Map<number, SentPart>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private file: GrowingFile | null = null;
  private upload: S3Multipart | null = null;
  private ready: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private size = 0;
  private next = 2;
  private failure: unknown = null;
  private state: State = 'idle';
  private ending: Promise<void> | null = null;
  private readonly onAbort = () => void this.abort();

  constructor(private readonly o: ProgressiveUploadOptions) {
    this.key = o.key;
    this.partSize = o.partSize ?? 8 * 1024 * 1024;
    if (this.partSize < MIN_PART_SIZE) throw new Error(`parts must be at least ${MIN_PART_SIZE} bytes`);
    this.headEnd = headPartEnd(o.headerBytes, this.partSize);
    this.pollMs = o.pollMs ?? 150;
    this.queueSize = o.queueSize ?? 3;
  }

  /** Parts that have gone up so far (for logs and tests). */
  get partsSent(): number {
    return this.sent.size;
  }

  /** Opens `file` (the fd keeps reading the same file through a rename) and starts following it. */
  start(file: string): void {
    if (this.state !== 'idle') throw new Error('a progressive upload starts once');
    this.state = 'running';
    if (this.o.signal.aborted) {
      void this.abort();
      return;
    }
    this.o.signal.addEventListener('abort', this.onAbort, { once: true });
    this.ready = (async () => {
      this.file = await GrowingFile.open(file);
      this.upload = await S3Multipart.create(this.o.files, this.key, this.o.contentType, this.stop.signal);
    })();
    this.ready.then(
      () => this.poll(),
      (err: unknown) => this.fail(err),
    );
  }

  private poll(): void {
    this.timer = null;
    if (this.state !== 'running' || this.failure || !this.file) return;
    this.file.size().then(
      (size) => {
        this.size = size;
        this.pump();
        if (this.state !== 'running' || this.failure) return;
        this.timer = setTimeout(() => this.poll(), this.pollMs);
        this.timer.unref();
      },
      (err: unknown) => this.fail(err),
    );
  }

  /** Sends the parts the file already holds in full, up to queueSize at once. */
  private pump(): void {
    const last = lastFullPart(this.size, this.headEnd, this.partSize);
    while (this.state === 'running' && !this.failure && this.inFlight.size < this.queueSize) {
      if (this.next > last) return;
      const range = fullPart(this.next++, this.headEnd, this.partSize);
      this.track(this.sendEarly(range)).then(
        () => this.pump(),
        (err: unknown) => this.fail(err),
      );
    }
  }

  private async sendEarly(range: PartRange): Promise<void> {
    const bytes = await this.file!.read(range.start, range.end);
    const etag = await this.uploadPart(range.part, bytes);
    this.sent.set(range.part, { range, etag, crc: crc32(bytes) });
    this.o.log.debug({ key: this.key, part: range.part, file_bytes: this.size }, 'part sent early');
  }

  /** Keeps a request in the set that abort() waits for, so no part lands after the upload is aborted. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.then(
      () => this.inFlight.delete(p),
      () => this.inFlight.delete(p),
    );
    return p;
  }

  private fail(err: unknown): void {
    if (this.failure || (this.state !== 'running' && this.state !== 'finishing')) return;
    this.failure = err;
    this.o.log.warn(
      { key: this.key, err: describeS3Error(err) },
      'the upload begun while the file is written stopped; the finished file will be uploaded whole',
    );
  }

  private uploadPart(part: number, body: Buffer): Promise<string> {
    return this.upload!.uploadPart(part, body, this.stop.signal);
  }

  /**
   * Completes the object from the finished file at `finalPath` (the same file, renamed or linked
   * there), or returns null after aborting the multipart upload when the early parts cannot be used.
   * Throws (after aborting) when S3 fails meanwhile; the caller then uploads the file whole.
   */
  async finish(finalPath: string): Promise<ProgressiveResult | null> {
    if (this.state !== 'running') return null;
    this.state = 'finishing';
    this.clearTimer();
    await this.ready?.catch(() => {});
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    const plan = await this.usablePlan(finalPath);
    if (typeof plan === 'string') {
      this.o.log.info({ key: this.key, reason: plan }, 'early upload dropped; uploading the file whole');
      await this.abort();
      return null;
    }
    try {
      const result = await this.complete(plan.parts, plan.size);
      this.state = 'done';
      this.o.signal.removeEventListener('abort', this.onAbort);
      await this.file?.close();
      this.file = null;
      return result;
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** The finished file's parts, or why the early ones cannot make its object. */
  private async usablePlan(finalPath: string): Promise<{ parts: PartRange[]; size: number } | string> {
    if (this.failure) return `a request failed: ${describeS3Error(this.failure)}`;
    if (this.o.signal.aborted) return 'the job was stopped';
    if (!this.file || !this.upload) return 'the upload never started';
    if (!(await this.file.isAt(finalPath))) {
      return 'the file was replaced by another one (a copy with the moov in front, or a merge by ffmpeg)';
    }
    if (this.sent.size < 2) return `${this.sent.size} part(s) went up early, too few to gain anything`;
    const size = await this.file.size();
    const parts = finalParts(size, this.headEnd, this.partSize);
    if (!parts) return `${size} bytes make more parts than S3 takes at ${this.partSize} bytes each`;
    return { parts, size };
  }

  private async complete(parts: PartRange[], size: number): Promise<ProgressiveResult> {
    const started = performance.now();
    const etags = new Map<number, string>();
    let kept = 0;
    let resent = 0;
    // The parts that must go up first (the head, the tail), the early ones' checks beside them.
    const order = [
      ...parts.filter((p) => !this.sent.has(p.part)),
      ...parts.filter((p) => this.sent.has(p.part)),
    ];
    await eachLimited(order, this.queueSize + 1, async (range) => {
      if (this.state !== 'finishing') throw new Error('the upload was aborted');
      const bytes = await this.file!.read(range.start, range.end);
      const early = this.sent.get(range.part);
      // Same part number means same start; a last part that ended elsewhere is not the same part.
      if (early?.range.end === range.end && early.crc === crc32(bytes)) {
        etags.set(range.part, early.etag);
        kept++;
        return;
      }
      if (early) resent++;
      etags.set(range.part, await this.track(this.uploadPart(range.part, bytes)));
    });
    const partsDone = performance.now();
    const etag = await this.upload!.complete(
      parts.map((p) => ({ part: p.part, etag: etags.get(p.part)! })),
      this.stop.signal,
    );
    if (resent > 0) {
      this.o.log.info({ key: this.key, resent }, 'parts sent early had changed by the end; sent again');
    }
    return {
      key: this.key,
      bytes: size,
      etag,
      earlyParts: kept,
      resentParts: resent,
      partsSeconds: seconds(partsDone - started),
      completeSeconds: seconds(performance.now() - partsDone),
    };
  }

  /**
   * Drops the upload: the requests in flight are stopped and waited for, then the multipart upload is
   * aborted so no part is left in the bucket, and the file is closed. Safe to call at any time, twice.
   */
  abort(): Promise<void> {
    if (this.state === 'done') return Promise.resolve();
    this.ending ??= this.teardown();
    return this.ending;
  }

  private async teardown(): Promise<void> {
    this.state = 'aborted';
    this.clearTimer();
    this.o.signal.removeEventListener('abort', this.onAbort);
    this.stop.abort();
    await this.ready?.catch(() => {});
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    try {
      await this.upload?.abort();
    } catch (err) {
      this.o.log.warn(
        { key: this.key, upload_id: this.upload?.uploadId, err: describeS3Error(err) },
        'could not abort a multipart upload; its parts stay until a lifecycle rule of the bucket removes them',
      );
    }
    await this.file?.close();
    this.file = null;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
