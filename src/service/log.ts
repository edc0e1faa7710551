import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { redactCredentials } from '../net/redact.js';

export type { Logger } from 'pino';

export const LOG_FILE_NAME = 'video_downloader.log';
const MAX_BYTES = 1024 * 1024;
const BACKUPS = 5;

/**
 * The spec's rotating log: `video_downloader.log` is always the live file and `.1` … `.5` the backups,
 * like Python's RotatingFileHandler that the original users tail. pino-roll numbers the live file
 * instead (`video_downloader.3.log`), which breaks `tail -F video_downloader.log`, hence this small
 * synchronous writer (INFO-level volume; a sync append keeps lines whole across a crash).
 */
export class RotatingFileStream {
  private fd: number;
  private size: number;
  constructor(
    readonly file: string,
    private readonly maxBytes = MAX_BYTES,
    private readonly backups = BACKUPS,
  ) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.fd = openSync(file, 'a');
    this.size = fstatSync(this.fd).size;
  }

  write(chunk: string): boolean {
    const bytes = Buffer.byteLength(chunk);
    if (this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
    writeSync(this.fd, chunk);
    this.size += bytes;
    return true;
  }

  private rotate(): void {
    closeSync(this.fd);
    rmSync(`${this.file}.${this.backups}`, { force: true });
    for (let i = this.backups - 1; i >= 1; i--) {
      if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    }
    if (this.backups > 0) renameSync(this.file, `${this.file}.1`);
    else rmSync(this.file, { force: true });
    this.fd = openSync(this.file, 'a');
    this.size = 0;
  }

  close(): void {
    closeSync(this.fd);
  }
}

export interface LoggerOptions {
  /** Folder for video_downloader.log; omitted = no file (tests, `gabe info`). */
  logPath?: string | null;
  level?: string;
  /** Write to stdout too (the service does; the CLI's download command keeps stdout for progress). */
  stdout?: boolean;
  /** Also write lines of at least this level to stderr (the CLI shows retries and warnings). */
  stderrLevel?: pino.Level;
}

/**
 * A line's fields with the credentials of any URL in them masked: strings, and strings in arrays and
 * plain objects a few levels down. Errors go through the `err` serializer below.
 */
function redactFields(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactCredentials(value);
  if (value === null || typeof value !== 'object' || depth >= 4) return value;
  if (Array.isArray(value)) return value.map((v) => redactFields(v, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactFields(v, depth + 1);
  return out;
}

/**
 * Every line, whoever writes it (jobs, webhooks, Fastify, the CLI), passes through net/redact.ts: a
 * URL's `user:pass@` never reaches the log file, stdout or stderr, whichever call site quotes a URL.
 */
const redaction = {
  hooks: {
    logMethod(this: Logger, args: Parameters<pino.LogFn>, method: pino.LogFn) {
      const masked = args.map((a) => (typeof a === 'string' ? redactCredentials(a) : a));
      return method.apply(this, masked as Parameters<pino.LogFn>);
    },
  },
  formatters: {
    log: (fields: Record<string, unknown>) => redactFields(fields) as Record<string, unknown>,
    bindings: (fields: pino.Bindings) => redactFields(fields) as pino.Bindings,
  },
  serializers: {
    err: (err: Error) => {
      const s = pino.stdSerializers.err(err);
      if (typeof s?.message === 'string') s.message = redactCredentials(s.message);
      if (typeof s?.stack === 'string') s.stack = redactCredentials(s.stack);
      return s;
    },
  },
};

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env['GABE_LOG_LEVEL'] ?? 'info';
  const streams: pino.StreamEntry[] = [];
  if (options.stdout ?? true) streams.push({ level: level as pino.Level, stream: process.stdout });
  if (options.stderrLevel) streams.push({ level: options.stderrLevel, stream: process.stderr });
  if (options.logPath) {
    streams.push({
      level: level as pino.Level,
      stream: new RotatingFileStream(path.join(options.logPath, LOG_FILE_NAME)),
    });
  }
  if (streams.length === 0) return pino({ level: 'silent' });
  const lowest = streams
    .map((s) => pino.levels.values[s.level ?? 'info'] ?? 30)
    .reduce((a, b) => Math.min(a, b));
  const logger = pino(
    { level: pino.levels.labels[lowest] ?? level, base: { pid: process.pid }, ...redaction },
    pino.multistream(streams),
  );
  // pino applies the bindings formatter to the root's bindings only: a child's go through here
  // (children inherit this `child` from the root, their prototype).
  const child = logger.child;
  logger.child = function (this: Logger, bindings: pino.Bindings, opts?: pino.ChildLoggerOptions) {
    return Reflect.apply(child, this, [redactFields(bindings), opts]);
  } as typeof logger.child;
  return logger;
}
