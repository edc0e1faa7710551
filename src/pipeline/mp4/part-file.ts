/**
 * The part file and the checkpoint beside it (`download.part.json`) on disk: positioned writes, the
 * throttled atomic checkpoint writer, and reading a checkpoint back when a job restarts.
 */
import { type FileHandle, readFile, rm, stat } from 'node:fs/promises';
import { GabeError } from '../../service/errors.js';
import { replaceFile } from '../../storage/paths.js';
import { CHECKPOINT_MS } from '../checkpoint-timing.js';
import { type Checkpoint, parseCheckpoint } from './range-plan.js';

/**
 * Writes the checkpoint (atomically: temp file, then rename, so a crash never leaves half a JSON
 * document) at most every CHECKPOINT_MS, one write at a time. The snapshot is taken when a write
 * starts, and pieces only count bytes whose write has finished, so data precedes the claim.
 */
export class CheckpointWriter {
  private timer: NodeJS.Timeout | null = null;
  private last = 0;
  private chain: Promise<void> = Promise.resolve();
  failure: unknown = null;

  constructor(
    private readonly file: string,
    private readonly snapshot: () => string,
  ) {}

  soon(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.last + CHECKPOINT_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.now().catch(() => {});
    }, wait);
  }

  now(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.last = Date.now();
    const write = this.chain.then(() => replaceFile(this.file, this.snapshot()));
    this.chain = write.catch((err: unknown) => {
      this.failure ??= err;
    });
    return write;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Resolves once no write is in flight (none may land after the caller removed the file). */
  async settled(): Promise<void> {
    await this.chain;
  }
}

/** Positioned write of all of `buffers` at `position`, however the kernel splits it. */
export async function writeAt(fh: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let { bytesWritten } = await fh.writev(buffers, position);
  const total = buffers.reduce((n, b) => n + b.length, 0);
  if (bytesWritten === total) return;
  const rest = Buffer.concat(buffers, total);
  while (bytesWritten < total) {
    const r = await fh.write(rest, bytesWritten, total - bytesWritten, position + bytesWritten);
    if (r.bytesWritten === 0) throw new GabeError('STORAGE', 'the part file accepted no more bytes');
    bytesWritten += r.bytesWritten;
  }
}

export async function loadCheckpoint(part: string): Promise<Checkpoint | null> {
  try {
    const cp = parseCheckpoint(await readFile(`${part}.json`, 'utf8'));
    if (!cp) return null;
    // The part file is created at its full size before the first checkpoint claims anything in it.
    return (await stat(part)).size === cp.size ? cp : null;
  } catch {
    return null;
  }
}

export async function removePart(part: string): Promise<void> {
  await rm(`${part}.json`, { force: true });
  await rm(part, { force: true });
}
