/**
 * Response heads for H1Transport (RFC 9112): finding where a head ends in the bytes as they come,
 * within one byte budget for a response and all its interim responses (deadlines.ts MAX_HEAD_BYTES);
 * parsing the status line and fields; and the body framing a head announces (section 6.3).
 */
import { headOverflowError, MAX_HEAD_BYTES, protocolError } from '../deadlines.js';

const CRLFCRLF = Buffer.from('\r\n\r\n');

export type Framing =
  | { kind: 'none' }
  | { kind: 'length'; left: number }
  | { kind: 'chunked' }
  | { kind: 'close' };

export interface Head {
  minor: 0 | 1;
  status: number;
  headers: Record<string, string | string[]>;
}

/**
 * Finds the end of each head (the empty line) in the reads of one response. A head inside one read
 * is searched where it lies, without a copy; one that spans reads is copied once into a buffer no
 * larger than what is left of the budget. Every byte is looked at a bounded number of times, so a
 * flood of heads costs time linear in its size (re-joining the pending bytes on every read did not).
 */
export class HeadReader {
  private pending: Buffer | null = null;
  private pendingLen = 0;
  /** Bytes of the heads of this response so far, interim ones included. */
  private used = 0;

  /**
   * Reads from `buf[at, n)`: the head's text and where its bytes end when one is complete, null when
   * the head goes on in the next read, or an error when the heads outgrow the budget.
   */
  read(buf: Buffer, at: number, n: number): { text: string; next: number } | null | Error {
    const budget = MAX_HEAD_BYTES - this.used;
    if (this.pendingLen === 0) {
      const i = buf.subarray(at, n).indexOf(CRLFCRLF);
      if (i < 0) {
        if (n - at >= budget) return headOverflowError();
        this.pending ??= Buffer.allocUnsafe(MAX_HEAD_BYTES);
        buf.copy(this.pending, 0, at, n);
        this.pendingLen = n - at;
        return null;
      }
      if (i + 4 > budget) return headOverflowError();
      this.used += i + 4;
      return { text: buf.toString('latin1', at, at + i), next: at + i + 4 };
    }
    const pending = this.pending!;
    const prev = this.pendingLen;
    const take = Math.min(n - at, budget - prev);
    buf.copy(pending, prev, at, at + take);
    this.pendingLen = prev + take;
    const i = pending.subarray(0, this.pendingLen).indexOf(CRLFCRLF, Math.max(0, prev - 3));
    if (i < 0) {
      if (this.pendingLen >= budget) return headOverflowError();
      return null;
    }
    this.pendingLen = 0;
    this.used += i + 4;
    return { text: pending.toString('latin1', 0, i), next: at + (i + 4 - prev) };
  }
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;

/** The status line of a head: its HTTP minor version and status, or an error when it is not HTTP/1.x. */
export function statusOf(text: string): { minor: 0 | 1; status: number } | Error {
  const eol = text.indexOf('\r\n');
  const line = eol < 0 ? text : text.slice(0, eol);
  const m = STATUS_LINE.exec(line);
  if (!m) {
    return protocolError(
      `not an HTTP/1.x response: ${JSON.stringify(line.slice(0, 80))}`,
      'HPE_INVALID_CONSTANT',
    );
  }
  const status = Number(m[2]);
  // RFC 9110 15: the first digit is the class, 1 to 5; no interim response below 100.
  if (status < 100) return protocolError(`invalid status ${m[2]}`, 'HPE_INVALID_STATUS');
  return { minor: m[1] === '1' ? 1 : 0, status };
}

/** Header fields by lower-case name; repeated ones joined with ", " (Set-Cookie kept apart). */
export function fieldsOf(text: string): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  const lines = text.split('\r\n');
  let last: string | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    // RFC 9112 5.2: a line starting with SP or HTAB continues the field before it (obs-fold); a user
    // agent that takes it must read the fold as SP. Dropping it would cut the value short.
    if ((line[0] === ' ' || line[0] === '\t') && last !== null) {
      const more = line.trim();
      if (more !== '') appendFold(headers, last, more);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      last = null;
      continue;
    }
    const name = line.slice(0, colon).trim().toLowerCase();
    addField(headers, name, line.slice(colon + 1).trim());
    last = name;
  }
  return headers;
}

/** Adds a field by its lower-case name: a repeat joined with ", " (RFC 9110 5.3), Set-Cookie kept apart. */
export function addField(headers: Record<string, string | string[]>, name: string, value: string): void {
  const had = headers[name];
  if (name === 'set-cookie') headers[name] = [...((had as string[] | undefined) ?? []), value];
  else headers[name] = had === undefined ? value : `${had}, ${value}`;
}

function appendFold(headers: Record<string, string | string[]>, name: string, more: string): void {
  const had = headers[name]!;
  if (Array.isArray(had)) had[had.length - 1] = `${had.at(-1)} ${more}`;
  else headers[name] = had === '' ? more : `${had} ${more}`;
}

/**
 * How the body of a final response is delimited, and whether the connection may carry another
 * response after it (RFC 9112 6.3, 9.3).
 */
export function framingOf(
  method: string,
  head: Head,
): { framing: Framing; length: number | null; keepAlive: boolean } | Error {
  const { status, headers } = head;
  const connection = String(headers['connection'] ?? '').toLowerCase();
  let keepAlive = head.minor === 1 ? !connection.includes('close') : connection.includes('keep-alive');
  // 6.3 rules 1 and 2: no body, whatever the fields say.
  if (method === 'HEAD' || status === 204 || status === 304)
    return { framing: { kind: 'none' }, length: 0, keepAlive };
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  if (te !== undefined) {
    const codings = String(te)
      .toLowerCase()
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    // Rule 3: Transfer-Encoding overrides Content-Length; such a message may be an attempt at
    // response smuggling, so the connection is closed after it.
    if (cl !== undefined) keepAlive = false;
    // Rule 4: chunked as the final coding frames the body; otherwise (`chunked, gzip`, `gzip`) the
    // body is what comes until the server closes the connection.
    if (codings.at(-1) === 'chunked') return { framing: { kind: 'chunked' }, length: null, keepAlive };
    return { framing: { kind: 'close' }, length: null, keepAlive: false };
  }
  if (typeof cl === 'string' && /^\d+$/.test(cl)) {
    const length = Number(cl);
    return { framing: { kind: 'length', left: length }, length, keepAlive };
  }
  if (cl !== undefined) {
    return protocolError(`invalid Content-Length ${JSON.stringify(cl)}`, 'HPE_INVALID_CONTENT_LENGTH');
  }
  // Rule 8: delimited by the close.
  return { framing: { kind: 'close' }, length: null, keepAlive: false };
}

/** `Keep-Alive: timeout=N` (RFC 9112 does not define it; the field is HTTP/1.0's, still widely sent). */
export function keepAliveTimeoutMs(headers: Record<string, string | string[]>): number | null {
  const m = /(?:^|[,;\s])timeout\s*=\s*"?(\d+)/i.exec(String(headers['keep-alive'] ?? ''));
  return m ? Number(m[1]) * 1000 : null;
}
