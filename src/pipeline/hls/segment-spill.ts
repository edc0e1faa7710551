/**
 * A segment too large to hold in memory (memory-budget.ts), on disk beside its track file until its turn
 * comes: written as it arrives, in batches, then read back in chunks into the track file and the
 * merge. Only a whole, checked segment is ever appended, so a request that fails midway leaves
 * nothing behind in the track file or in the merge, which cannot take bytes back.
 */
import { type FileHandle, open, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { GabeError } from '../../service/errors.js';

/** Bytes gathered before a write: a few socket reads at a time. */
const WRITE_BATCH = 256 * 1024;
/** Bytes read back at a time into the track file and the merge. */
export const SPILL_READ_CHUNK = 1024 * 1024;

const spillName = (file: string, index: number) => `${file}.spill-${index}`;

/** Removes the spill files a stopped run left beside `file` (they are fetched again). */
export async function removeStaleSpills(file: string): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.spill-`;
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names.filter((n) => n.startsWith(prefix)).map((n) => rm(path.join(dir, n), { force: true })),
  );
}

export class SpillFile {
  private batch: Buffer[] = [];
  private batchBytes = 0;
  /** Bytes in the file (after flush). */
  size = 0;

  private constructor(
    readonly path: string,
    private fh: FileHandle | null,
  ) {}

  /** A new, empty spill file for the piece `index` of the track in `file`. */
  static async create(file: string, index: number): Promise<SpillFile> {
    const p = spillName(file, index);
    return new SpillFile(p, await open(p, 'w'));
  }

  async write(data: Buffer): Promise<void> {
    this.batch.push(data);
    this.batchBytes += data.length;
    if (this.batchBytes >= WRITE_BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.batchBytes === 0 || !this.fh) return;
    const batch = this.batch;
    const n = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    await (batch.length === 1 ? this.fh.write(batch[0]!) : this.fh.writev(batch));
    this.size += n;
  }

  /** Everything is in: the file is complete. */
  async finish(): Promise<void> {
    await this.flush();
    await this.fh?.close();
    this.fh = null;
  }

  /** The bytes back, `chunk` at a time, each into a buffer from `take`. */
  async *read(take: (size: number) => Buffer, chunk = SPILL_READ_CHUNK): AsyncGenerator<Buffer> {
    const fh = await open(this.path, 'r');
    try {
      for (let at = 0; at < this.size; ) {
        const n = Math.min(chunk, this.size - at);
        const buf = take(n);
        const { bytesRead } = await fh.read(buf, 0, n, at);
        if (bytesRead !== n) {
          throw new GabeError('STORAGE', `${this.path} ended at ${at + bytesRead} of ${this.size} bytes`);
        }
        at += n;
        yield buf;
      }
    } finally {
      await fh.close();
    }
  }

  /** Drops the file (written, failed or cancelled). */
  async remove(): Promise<void> {
    this.batch = [];
    this.batchBytes = 0;
    await this.fh?.close().catch(() => {});
    this.fh = null;
    await rm(this.path, { force: true });
  }
}
