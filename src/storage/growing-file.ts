/**
 * A file read while another writer still writes it, through one fd held from the start: reads reach the
 * same file after it is renamed or linked elsewhere, and while the fd is open the file's inode number
 * cannot be given to another file, so `isAt` tells reliably whether a path still names this file.
 */
import { type FileHandle, open, stat } from 'node:fs/promises';

export class GrowingFile {
  private constructor(
    private readonly fh: FileHandle,
    private readonly dev: number,
    private readonly ino: number,
  ) {}

  static async open(file: string): Promise<GrowingFile> {
    const fh = await open(file, 'r');
    try {
      const s = await fh.stat();
      return new GrowingFile(fh, s.dev, s.ino);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  /** True when `file` names this very file (not a copy renamed over it); false when it is gone. */
  async isAt(file: string): Promise<boolean> {
    try {
      const s = await stat(file);
      return s.dev === this.dev && s.ino === this.ino;
    } catch {
      return false;
    }
  }

  /** Bytes [start, end), all of them: a file that ends sooner throws. */
  async read(start: number, end: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(end - start);
    let at = 0;
    while (at < buf.length) {
      const { bytesRead } = await this.fh.read(buf, at, buf.length - at, start + at);
      if (bytesRead === 0) throw new Error(`the file ends at ${start + at} bytes, before ${end}`);
      at += bytesRead;
    }
    return buf;
  }

  close(): Promise<void> {
    return this.fh.close().catch(() => {});
  }
}
