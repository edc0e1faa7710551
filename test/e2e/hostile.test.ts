/**
 * Hostile input, table-driven: requests the API must refuse with a 4xx, and playlists, keys and media
 * from a real origin that a job must fail on with a specific `error_code` and an `error` that names the
 * problem (and the HTTP status, when one caused it). A few inputs are harmless by design (odd
 * `video_name`s, lenient EXTINF values) and must then complete with a safe result. After the whole
 * table the service still answers /health, Object.prototype is untouched and memory stayed bounded.
 *
 * Everything runs against the real service (SQLite, ffmpeg) and the fault-injecting origin on
 * 127.0.0.1 (allow_private_networks is on in test/helpers/service.ts). Each submission comes from its
 * own client address, so per-IP limits and the submission rate limit never interfere.
 */
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { Job } from '../../src/jobs/types.js';
import { type HlsMediaFixture, type Mp4Fixture, makeHlsTs, makeMp4 } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/mutate.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface RequestCase {
  name: string;
  method?: Method;
  /** Path on the API; default POST /download/. */
  url?: string;
  headers?: Record<string, string>;
  /** A string or Buffer is sent as is; anything else as JSON. Default content type: application/json. */
  payload?: unknown;
  status: number;
  code: string;
  /** For 422 validation errors: the `loc` of the first field error. */
  loc?: (string | number)[];
  /** What `detail` must say (as JSON text). */
  detail?: RegExp;
  todo?: string;
}

/** What the origin serves to one playlist case; `at(p)` is the absolute URL of the case's path `p`. */
interface CaseContext {
  origin: Origin;
  at(p: string): string;
  path(p: string): string;
  serve(p: string, body: string | Buffer, contentType?: string): string;
  /** Absolute URLs of the good TS segments and their durations. */
  segments: string[];
  durations: number[];
  /** A media file on the service's own disk, as another user's download would be. */
  localFile: string;
}

interface PlaylistCase {
  name: string;
  endpoint?: '/download/' | '/download/mp4';
  /** Registers the case's routes; returns the URL to submit (or a full request body). */
  setup(c: CaseContext): string | Record<string, unknown>;
  /** The job must fail with this code and an `error` matching `error`... */
  code?: string;
  error?: RegExp;
  /** ...or, for input that is odd but harmless, complete with the real media; this says why. */
  harmless?: string;
  /** A harmless case's `result.warnings` must hold one matching this. */
  warning?: RegExp;
  todo?: string;
  /** Runs around the job (memory measurements). */
  measure?: boolean;
}

interface NameCase {
  name: string;
  videoName: string;
  /** The expected file name without `.mp4`; a RegExp when only its shape is certain. */
  expect: string | RegExp;
}

// ---------------------------------------------------------------------------------------------
// Playlist builders

const M3U8 = 'application/vnd.apple.mpegurl';

function mediaPlaylist(
  uris: readonly string[],
  o: { extinf?: (i: number) => string; head?: string[]; before?: (i: number) => string[]; endlist?: boolean },
): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:2', ...(o.head ?? [])];
  uris.forEach((uri, i) => {
    lines.push(...(o.before?.(i) ?? []), o.extinf?.(i) ?? '#EXTINF:2.000000,', uri);
  });
  if (o.endlist !== false) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

const good = (c: CaseContext, o: Parameters<typeof mediaPlaylist>[1] = {}) =>
  mediaPlaylist(c.segments, { extinf: (i) => `#EXTINF:${c.durations[i]?.toFixed(6)},`, ...o });

const master = (variants: readonly string[]) =>
  `#EXTM3U\n${variants.map((v, i) => `#EXT-X-STREAM-INF:BANDWIDTH=${(i + 1) * 100_000}\n${v}`).join('\n')}\n`;

const HTML_PAGE =
  '<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form>Sign in to watch</form></body></html>\n';

function randomBytes(n: number, seed: number): Buffer {
  const rng = mulberry32(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(rng() * 256)));
}

// ---------------------------------------------------------------------------------------------
// The request table

const VALID = 'http://127.0.0.1:9/stream/index.m3u8';
const body = (fields: Record<string, unknown>) => ({ url: VALID, ...fields });
const PROTO = `{"url":"${VALID}","__proto__":{"polluted":"yes"}}`;
const nested = (depth: number) => `{"url":"${VALID}","video_name":${'['.repeat(depth)}${']'.repeat(depth)}}`;

const REQUESTS: RequestCase[] = [
  // Not JSON, or not the JSON we asked for.
  { name: 'a body that is not JSON', payload: 'url=http://x/', status: 422, code: 'GABE_ERR_VALIDATION' },
  { name: 'truncated JSON', payload: `{"url": "${VALID}"`, status: 422, code: 'GABE_ERR_VALIDATION' },
  { name: 'an empty JSON body', payload: '', status: 422, code: 'GABE_ERR_VALIDATION' },
  { name: 'JSON null', payload: 'null', status: 422, code: 'GABE_ERR_VALIDATION' },
  { name: 'a top-level JSON array', payload: `["${VALID}"]`, status: 422, code: 'GABE_ERR_VALIDATION' },
  { name: 'a top-level JSON string', payload: `"${VALID}"`, status: 422, code: 'GABE_ERR_VALIDATION' },
  { name: 'a top-level JSON number', payload: '42', status: 422, code: 'GABE_ERR_VALIDATION' },
  { name: 'an empty object', payload: {}, status: 422, code: 'GABE_ERR_VALIDATION', loc: ['body', 'url'] },
  {
    name: 'a text/plain body (parsed as a string, which is not an object)',
    headers: { 'content-type': 'text/plain' },
    payload: VALID,
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body'],
  },
  {
    name: 'a gzip-encoded body',
    headers: { 'content-encoding': 'gzip' },
    payload: gzipSync(JSON.stringify({ url: VALID })),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'a form-encoded body',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: `url=${encodeURIComponent(VALID)}`,
    status: 415,
    code: 'GABE_ERR_BAD_REQUEST',
  },
  {
    name: 'JSON declared as UTF-16',
    headers: { 'content-type': 'application/json; charset=utf-16' },
    payload: Buffer.from(JSON.stringify({ url: VALID }), 'utf16le'),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'a body over 1 MB',
    payload: body({ video_name: 'x'.repeat(1024 * 1024) }),
    status: 413,
    code: 'GABE_ERR_BODY_TOO_LARGE',
  },
  // Wrong JSON types.
  {
    name: 'url as a number',
    payload: { url: 42 },
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'url as a boolean',
    payload: { url: true },
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'url as null',
    payload: { url: null },
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'url as an array',
    payload: { url: [VALID] },
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'url as an object',
    payload: { url: { href: VALID } },
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'url as an empty string',
    payload: { url: '' },
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'url as a huge number (1e999 parses to Infinity)',
    payload: '{"url": 1e999}',
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'a URL of 8 KiB + 1 characters',
    payload: { url: `http://127.0.0.1/${'a'.repeat(8192 - 17 + 1)}` },
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'url'],
  },
  {
    name: 'an unknown field',
    payload: body({ output_path: '/etc' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'output_path'],
  },
  {
    name: '10,000 unknown fields',
    payload: body(Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`f${i}`, i]))),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'resolution as a number',
    payload: body({ resolution: 720 }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution "720" (no p)',
    payload: body({ resolution: '720' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution "1280X720" (upper-case X)',
    payload: body({ resolution: '1280X720' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution "0p"',
    payload: body({ resolution: '0p' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution "-1x-1"',
    payload: body({ resolution: '-1x-1' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution "best " (trailing space)',
    payload: body({ resolution: 'best ' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution with an injection attempt',
    payload: body({ resolution: "720p'; DROP TABLE jobs;--" }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution as an array',
    payload: body({ resolution: ['720p'] }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'resolution as an object',
    payload: body({ resolution: { height: 720 } }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  {
    name: 'use_multithreading as the string "true"',
    payload: body({ use_multithreading: 'true' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'use_multithreading'],
  },
  {
    name: 'use_multithreading as the number 1',
    payload: body({ use_multithreading: 1 }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'use_multithreading'],
  },
  {
    name: 'video_name as a number',
    payload: body({ video_name: 7 }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'video_name'],
  },
  {
    name: 'video_name of 10 KB',
    payload: body({ video_name: 'n'.repeat(10_000) }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'video_name'],
  },
  {
    name: 'proxy with an ftp scheme',
    payload: body({ proxy: 'ftp://proxy:21' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'proxy'],
  },
  {
    name: 'proxy as a number',
    payload: body({ proxy: 8080 }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'proxy'],
  },
  {
    name: 'type "mkv" on /download/mp4',
    url: '/download/mp4',
    payload: body({ type: 'mkv' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'type'],
  },
  {
    name: 'an HLS-only field on /download/mp4',
    url: '/download/mp4',
    payload: body({ resolution: '720p' }),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    loc: ['body', 'resolution'],
  },
  // JSON structure attacks.
  {
    name: 'JSON nested 10,000 levels deep',
    payload: nested(10_000),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'JSON nested 400,000 levels deep (800 KB)',
    payload: nested(400_000),
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'a __proto__ key (prototype pollution)',
    payload: PROTO,
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'a nested __proto__ key',
    payload: `{"url":"${VALID}","video_name":{"__proto__":{"polluted":"yes"}}}`,
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'a constructor.prototype key (prototype pollution)',
    payload: `{"url":"${VALID}","constructor":{"prototype":{"polluted":"yes"}}}`,
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'a __proto__ key, named as the reason in detail',
    payload: PROTO,
    status: 422,
    code: 'GABE_ERR_VALIDATION',
    detail: /__proto__|prototype/,
  },
  {
    name: 'duplicate keys: the last (a file: URL) wins and is refused',
    payload: `{"url":"${VALID}","url":"file:///etc/passwd"}`,
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  // URLs the service must never fetch.
  { name: 'a file: URL', payload: { url: 'file:///etc/passwd' }, status: 422, code: 'GABE_ERR_INVALID_URL' },
  {
    name: 'an ftp: URL',
    payload: { url: 'ftp://127.0.0.1/video.mp4' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  {
    name: 'a javascript: URL',
    payload: { url: 'javascript:alert(1)' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  {
    name: 'a data: URL',
    payload: { url: 'data:video/mp4;base64,AAAA' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  {
    name: 'a gopher: URL',
    payload: { url: 'gopher://127.0.0.1:6379/_FLUSHALL' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  {
    name: 'a scheme-relative URL',
    payload: { url: '//127.0.0.1/x.m3u8' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  {
    name: 'a URL that is not a URL',
    payload: { url: 'not a url' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  { name: 'http:// without a host', payload: { url: 'http://' }, status: 422, code: 'GABE_ERR_INVALID_URL' },
  {
    name: 'an unterminated IPv6 literal',
    payload: { url: 'http://[::1/x.m3u8' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  {
    name: 'a port out of range',
    payload: { url: 'http://127.0.0.1:99999/x.m3u8' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  {
    name: 'a file: URL on /download/mp4',
    url: '/download/mp4',
    payload: { url: 'file:///etc/shadow' },
    status: 422,
    code: 'GABE_ERR_INVALID_URL',
  },
  // Routes, methods and parameters.
  { name: 'PUT /download/', method: 'PUT', payload: { url: VALID }, status: 404, code: 'GABE_ERR_NOT_FOUND' },
  { name: 'GET /download/', method: 'GET', url: '/download/', status: 404, code: 'GABE_ERR_NOT_FOUND' },
  {
    name: 'PATCH /job/x',
    method: 'PATCH',
    url: '/job/x',
    payload: {},
    status: 404,
    code: 'GABE_ERR_NOT_FOUND',
  },
  {
    name: 'GET /job/ with an unknown id',
    method: 'GET',
    url: '/job/00000000-0000-0000-0000-000000000000',
    status: 404,
    code: 'GABE_ERR_JOB_NOT_FOUND',
  },
  {
    name: 'DELETE /job/ with an unknown id',
    method: 'DELETE',
    url: '/job/not-a-job',
    status: 404,
    code: 'GABE_ERR_JOB_NOT_FOUND',
  },
  {
    name: 'GET /job/ with a traversal id',
    method: 'GET',
    url: '/job/..%2F..%2Fetc%2Fpasswd',
    status: 404,
    code: 'GABE_ERR_JOB_NOT_FOUND',
  },
  {
    name: 'GET /job/ with a 150-character id',
    method: 'GET',
    url: `/job/${'a'.repeat(150)}`,
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'GET /job/ with a 10 KB id',
    method: 'GET',
    url: `/job/${'a'.repeat(10_000)}`,
    status: 414,
    code: 'GABE_ERR_BAD_REQUEST',
  },
  {
    name: 'GET /job/ with a malformed percent-escape',
    method: 'GET',
    url: '/job/%E0%A4%A',
    status: 400,
    code: 'GABE_ERR_BAD_REQUEST',
  },
  {
    name: 'GET /jobs?limit=-1',
    method: 'GET',
    url: '/jobs?limit=-1',
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'GET /jobs?limit=abc',
    method: 'GET',
    url: '/jobs?limit=abc',
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'GET /jobs?limit=1e9',
    method: 'GET',
    url: '/jobs?limit=1000000000',
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'GET /jobs?status=BOGUS',
    method: 'GET',
    url: '/jobs?status=BOGUS',
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
  {
    name: 'GET /jobs with an unknown parameter',
    method: 'GET',
    url: '/jobs?drop=1',
    status: 422,
    code: 'GABE_ERR_VALIDATION',
  },
];

// ---------------------------------------------------------------------------------------------
// The playlist table

/** Serves a master playlist chain m0 → m1 → … → m(n-1), each with one variant: the next one. */
function masterChain(c: CaseContext, n: number): string {
  for (let i = 0; i < n; i++) c.serve(`/m${i}.m3u8`, master([c.at(`/m${i + 1}.m3u8`)]));
  return c.at('/m0.m3u8');
}

const SEGMENTS_200K = 200_000;

const PLAYLISTS: PlaylistCase[] = [
  // Answers that are not playlists.
  {
    name: 'an HTML page answered with 200',
    setup: (c) => c.serve('/index.m3u8', HTML_PAGE, 'text/html'),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /HTML page/,
  },
  {
    name: 'an HTML error page answered with 404',
    setup: (c) => {
      c.origin.route(c.path('/index.m3u8'), { body: HTML_PAGE, contentType: 'text/html', status: 404 });
      return c.at('/index.m3u8');
    },
    code: 'GABE_ERR_HTTP_STATUS',
    error: /HTTP 404/,
  },
  {
    name: 'a playlist URL answered with 403 Forbidden',
    setup: (c) => {
      c.origin.route(c.path('/index.m3u8'), { body: 'forbidden', status: 403 });
      return c.at('/index.m3u8');
    },
    code: 'GABE_ERR_HTTP_STATUS',
    error: /HTTP 403/,
  },
  {
    name: 'random binary data',
    setup: (c) => c.serve('/index.m3u8', randomBytes(4096, 7)),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /binary data/,
  },
  {
    name: 'an empty body',
    setup: (c) => c.serve('/index.m3u8', ''),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /empty response/,
  },
  {
    name: 'only blank lines',
    setup: (c) => c.serve('/index.m3u8', '\n \r\n\t\n\uFEFF\n'),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /empty response/,
  },
  {
    name: 'a JSON document',
    setup: (c) => c.serve('/index.m3u8', '{"error":"token expired","playlist":null}', 'application/json'),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /JSON document/,
  },
  {
    name: 'a DASH manifest without a representation',
    setup: (c) =>
      c.serve('/index.m3u8', '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>\n'),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /DASH manifest/,
  },
  {
    name: 'a UTF-16LE playlist with BOM',
    setup: (c) =>
      c.serve('/index.m3u8', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(good(c), 'utf16le')])),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /UTF-16/,
  },
  {
    name: 'a UTF-16BE playlist with BOM',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(good(c), 'utf16le').swap16()]),
      ),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /UTF-16/,
  },
  {
    name: '#EXTM3U followed by binary garbage with NUL bytes',
    setup: (c) => c.serve('/index.m3u8', Buffer.concat([Buffer.from('#EXTM3U\n'), randomBytes(2048, 11)])),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /binary data/,
  },
  {
    name: 'NUL bytes inside a tag line',
    setup: (c) =>
      c.serve('/index.m3u8', good(c).replace('#EXT-X-TARGETDURATION:2', '#EXT-X-TARGETDURATION:2\0\0')),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /binary data/,
  },
  {
    name: 'a plain list of links without #EXTM3U',
    setup: (c) => c.serve('/index.m3u8', `${c.segments.join('\n')}\n`),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /does not start with #EXTM3U/,
  },
  {
    name: '#EXTM3U and nothing else',
    setup: (c) => c.serve('/index.m3u8', '#EXTM3U\n'),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /no segments/,
  },
  {
    name: 'a finished playlist without segments',
    setup: (c) => c.serve('/index.m3u8', '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-ENDLIST\n'),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /no segments/,
  },
  {
    name: 'a live playlist (no EXT-X-ENDLIST) that never changes',
    setup: (c) => c.serve('/index.m3u8', good(c, { endlist: false })),
    harmless: 'it is recorded as live, and the recording ends after three target durations without change',
  },
  // Loops and broken structure.
  {
    name: 'a master whose variant is the master itself',
    setup: (c) => c.serve('/self.m3u8', master([c.at('/self.m3u8')])),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /masters in a row/,
  },
  {
    name: 'a master → master → master … chain of 10',
    setup: (c) => masterChain(c, 10),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /masters in a row/,
  },
  {
    name: 'two masters pointing at each other',
    setup: (c) => {
      c.serve('/b.m3u8', master([c.at('/a.m3u8')]));
      return c.serve('/a.m3u8', master([c.at('/b.m3u8')]));
    },
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /masters in a row/,
  },
  {
    name: 'a media playlist whose segments are the playlist itself',
    setup: (c) => c.serve('/index.m3u8', mediaPlaylist([c.at('/index.m3u8'), c.at('/index.m3u8')], {})),
    code: 'GABE_ERR_SEGMENT',
    error: /segment 0 .*is an HLS playlist, not media/,
  },
  {
    name: 'a segment that is an HLS playlist of a file on the server (file://)',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        mediaPlaylist(
          [
            c.serve(
              '/seg.ts',
              `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile://${c.localFile}\n#EXT-X-ENDLIST\n`,
              'video/mp2t',
            ),
          ],
          {},
        ),
      ),
    code: 'GABE_ERR_SEGMENT',
    error: /segment 0 .*is an HLS playlist, not media/,
  },
  {
    name: 'a master with renditions but no variant',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="a.m3u8"\n#EXT-X-SESSION-DATA:DATA-ID="x",VALUE="y"\n',
      ),
    code: 'GABE_ERR_NO_VARIANT',
    error: /no playable variant/,
  },
  {
    name: 'a master with only I-frame variants',
    setup: (c) =>
      c.serve('/index.m3u8', '#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1000,URI="iframes.m3u8"\n'),
    code: 'GABE_ERR_NO_VARIANT',
    error: /no playable variant/,
  },
  {
    name: 'a master whose variant answers 404',
    setup: (c) => c.serve('/index.m3u8', master([c.at('/missing.m3u8')])),
    code: 'GABE_ERR_HTTP_STATUS',
    error: /HTTP 404/,
  },
  {
    name: 'a master whose variant is an HTML page',
    setup: (c) => {
      c.serve('/v.m3u8', HTML_PAGE, 'text/html');
      return c.serve('/index.m3u8', master([c.at('/v.m3u8')]));
    },
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /HTML page/,
  },
  {
    name: 'a master whose variant is a file: URL',
    setup: (c) => c.serve('/index.m3u8', master(['file:///etc/passwd'])),
    code: 'GABE_ERR_INVALID_URL',
    error: /only http and https/,
  },
  {
    name: 'a master whose audio rendition is a master',
    setup: (c) => {
      c.serve('/v.m3u8', good(c));
      c.serve('/audio.m3u8', master([c.at('/v.m3u8')]));
      return c.serve(
        '/index.m3u8',
        `#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",DEFAULT=YES,URI="${c.at('/audio.m3u8')}"\n` +
          `#EXT-X-STREAM-INF:BANDWIDTH=100000,AUDIO="a"\n${c.at('/v.m3u8')}\n`,
      );
    },
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /audio rendition is not a media playlist/,
  },
  // DRM and unsupported encryption.
  {
    name: 'a master with a FairPlay session key',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        `#EXTM3U\n#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://k",KEYFORMAT="com.apple.streamingkeydelivery"\n${master(['v.m3u8']).slice(8)}`,
      ),
    code: 'GABE_ERR_DRM',
    error: /DRM-protected \(FairPlay\)/,
  },
  {
    name: 'SAMPLE-AES segments',
    setup: (c) => c.serve('/index.m3u8', good(c, { head: ['#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k.key"'] })),
    code: 'GABE_ERR_DRM',
    error: /SAMPLE-AES/,
  },
  {
    name: 'a Widevine key',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        good(c, {
          head: [
            '#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="data:text/plain;base64,AAAA",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"',
          ],
        }),
      ),
    code: 'GABE_ERR_DRM',
    error: /Widevine/,
  },
  {
    name: 'METHOD=AES-256, which is not supported',
    setup: (c) =>
      c.serve('/index.m3u8', good(c, { head: [`#EXT-X-KEY:METHOD=AES-256,URI="${c.at('/k.key')}"`] })),
    code: 'GABE_ERR_DRM',
    error: /AES-256 is not supported/,
  },
  // Size limits.
  {
    name: `${SEGMENTS_200K.toLocaleString('en')} segments (the cap is 100,000)`,
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        mediaPlaylist(
          Array.from({ length: SEGMENTS_200K }, (_, i) => `seg_${i}.ts`),
          {},
        ),
      ),
    code: 'GABE_ERR_PLAYLIST_TOO_LARGE',
    error: /more than 100000 segments/,
    measure: true,
  },
  {
    name: 'a master with 100,001 variants',
    setup: (c) => c.serve('/index.m3u8', master(Array.from({ length: 100_001 }, (_, i) => `v${i}.m3u8`))),
    code: 'GABE_ERR_PLAYLIST_TOO_LARGE',
    error: /more than 100000 segments or variants/,
    measure: true,
  },
  {
    name: 'a 20 MB playlist with Content-Length (the cap is 16 MiB)',
    setup: (c) => c.serve('/index.m3u8', Buffer.alloc(20 * 1024 * 1024, '#EXT-X-COMMENT\n')),
    code: 'GABE_ERR_PLAYLIST_TOO_LARGE',
    error: /16777216/,
    measure: true,
  },
  {
    name: 'a 20 MB playlist sent chunked, without Content-Length',
    setup: (c) => {
      c.origin.addFault({ match: c.path('/index.m3u8'), chunked: true });
      return c.serve('/index.m3u8', Buffer.alloc(20 * 1024 * 1024, '#EXT-X-COMMENT\n'));
    },
    code: 'GABE_ERR_PLAYLIST_TOO_LARGE',
    error: /16777216/,
    measure: true,
  },
  {
    name: 'EXT-X-DEFINE variables that expand exponentially ("billion laughs")',
    setup: (c) => {
      const lines = ['#EXTM3U', `#EXT-X-DEFINE:NAME="v0",VALUE="${'x'.repeat(64)}"`];
      for (let i = 1; i <= 12; i++)
        lines.push(`#EXT-X-DEFINE:NAME="v${i}",VALUE="${`{$v${i - 1}}`.repeat(16)}"`);
      lines.push('#EXT-X-TARGETDURATION:2', '#EXTINF:2,', 'seg{$v12}.ts', '#EXT-X-ENDLIST');
      return c.serve('/index.m3u8', `${lines.join('\n')}\n`);
    },
    code: 'GABE_ERR_PLAYLIST_TOO_LARGE',
    error: /EXT-X-DEFINE/,
    measure: true,
  },
  {
    name: '100,000 EXT-X-KEY tags with distinct KEYFORMATs',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        good(c, {
          head: Array.from(
            { length: 100_000 },
            (_, i) => `#EXT-X-KEY:METHOD=AES-128,URI="k",KEYFORMAT="f${i}"`,
          ),
        }),
      ),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /KEYFORMAT/,
    measure: true,
  },
  // Durations.
  {
    name: 'negative EXTINF durations',
    setup: (c) => c.serve('/index.m3u8', good(c, { extinf: () => '#EXTINF:-5,' })),
    harmless: 'a negative duration reads as unknown (the M3U convention of -1); the media is intact',
  },
  {
    name: 'NaN EXTINF durations',
    setup: (c) => c.serve('/index.m3u8', good(c, { extinf: () => '#EXTINF:NaN,' })),
    harmless: 'an unreadable duration reads as unknown; the media is intact',
  },
  {
    name: 'Infinity EXTINF durations',
    setup: (c) => c.serve('/index.m3u8', good(c, { extinf: () => '#EXTINF:Infinity,' })),
    harmless: 'an unreadable duration reads as unknown; the media is intact',
  },
  {
    name: 'NaN EXTINF on half the segments, valid on the others',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        good(c, { extinf: (i) => (i % 2 ? '#EXTINF:NaN,' : `#EXTINF:${c.durations[i]},`) }),
      ),
    harmless: 'unknown durations must not make the integrity check compare the file with a partial sum',
  },
  {
    name: 'a huge EXTINF (1e300 s)',
    setup: (c) => c.serve('/index.m3u8', good(c, { extinf: () => '#EXTINF:1e300,' })),
    harmless: "EXTINF is the playlist's claim: the media is fetched whole and kept, the claim reported",
    warning: /EXTINF durations add up to \de\+300 s/,
  },
  {
    name: 'EXTINF durations ten times the real length',
    setup: (c) =>
      c.serve('/index.m3u8', good(c, { extinf: (i) => `#EXTINF:${(c.durations[i] ?? 2) * 10},` })),
    harmless: "EXTINF is the playlist's claim: the media is fetched whole and kept, the claim reported",
    warning: /the file holds [\d.]+ s of media where the playlist's EXTINF durations add up to/,
  },
  // Byte ranges.
  {
    name: 'a byte range past the end of the file (the origin answers 416)',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        mediaPlaylist([c.segments[0]!], { before: () => ['#EXT-X-BYTERANGE:1000@100000000'] }),
      ),
    code: 'GABE_ERR_SEGMENT',
    error: /HTTP 416/,
  },
  {
    name: 'a byte range past the end of a file served without Range support',
    setup: (c) => {
      c.origin.addFault({ match: /\/media\//, ignoreRange: true });
      return c.serve(
        '/index.m3u8',
        mediaPlaylist([c.segments[0]!], { before: () => ['#EXT-X-BYTERANGE:1000@100000000'] }),
      );
    },
    code: 'GABE_ERR_SEGMENT',
    error: /shorter than its byte range/,
  },
  {
    name: 'a byte range that does not parse',
    setup: (c) => c.serve('/index.m3u8', good(c, { before: () => ['#EXT-X-BYTERANGE:lots@-1'] })),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /invalid byte range/,
  },
  {
    name: 'byte ranges that add up past 2^53',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        good(c, {
          before: (i) => [
            i === 0 ? '#EXT-X-BYTERANGE:9007199254740000@1000' : '#EXT-X-BYTERANGE:9007199254740000',
          ],
        }),
      ),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /invalid byte range/,
  },
  // Keys.
  {
    name: 'an AES-128 key without URI',
    setup: (c) => c.serve('/index.m3u8', good(c, { head: ['#EXT-X-KEY:METHOD=AES-128'] })),
    code: 'GABE_ERR_KEY',
    error: /key has no URI/,
  },
  {
    name: 'a key URL that answers 404',
    setup: (c) =>
      c.serve('/index.m3u8', good(c, { head: [`#EXT-X-KEY:METHOD=AES-128,URI="${c.at('/nokey')}"`] })),
    code: 'GABE_ERR_KEY',
    error: /key .* could not be fetched: HTTP 404/,
  },
  {
    name: 'a key of 10 bytes',
    setup: (c) => {
      c.serve('/k.key', Buffer.alloc(10, 1), 'application/octet-stream');
      return c.serve('/index.m3u8', good(c, { head: [`#EXT-X-KEY:METHOD=AES-128,URI="${c.at('/k.key')}"`] }));
    },
    code: 'GABE_ERR_KEY',
    error: /is 10 bytes, not 16/,
  },
  {
    name: 'a key that is a 2 KB HTML page',
    setup: (c) => {
      c.serve('/k.key', HTML_PAGE.repeat(20), 'text/html');
      return c.serve('/index.m3u8', good(c, { head: [`#EXT-X-KEY:METHOD=AES-128,URI="${c.at('/k.key')}"`] }));
    },
    code: 'GABE_ERR_KEY',
    error: /key .* could not be fetched/,
  },
  {
    name: 'a key URI with the file: scheme',
    setup: (c) =>
      c.serve('/index.m3u8', good(c, { head: ['#EXT-X-KEY:METHOD=AES-128,URI="file:///etc/passwd"'] })),
    code: 'GABE_ERR_KEY',
    error: /only http and https/,
  },
  {
    name: 'an IV that is not hexadecimal',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        good(c, { head: [`#EXT-X-KEY:METHOD=AES-128,URI="${c.at('/k.key')}",IV=0xNOTHEX`] }),
      ),
    code: 'GABE_ERR_KEY',
    error: /invalid IV/,
  },
  {
    name: 'segments encrypted with another key than the one served',
    setup: (c) => {
      const key = Buffer.alloc(16, 0x11);
      const iv = Buffer.alloc(16, 0x22);
      c.serve('/k.key', Buffer.alloc(16, 0x33), 'application/octet-stream');
      const data = randomBytes(4096, 5);
      const cipher = createCipheriv('aes-128-cbc', key, iv);
      c.serve('/enc.ts', Buffer.concat([cipher.update(data), cipher.final()]), 'video/mp2t');
      return c.serve(
        '/index.m3u8',
        mediaPlaylist([c.at('/enc.ts')], {
          head: [`#EXT-X-KEY:METHOD=AES-128,URI="${c.at('/k.key')}",IV=0x${iv.toString('hex')}`],
        }),
      );
    },
    code: 'GABE_ERR_KEY',
    error: /could not be decrypted/,
  },
  // Segments.
  {
    name: 'segments that are HTML pages',
    setup: (c) => {
      c.serve('/seg.ts', HTML_PAGE, 'text/html');
      return c.serve('/index.m3u8', mediaPlaylist([c.at('/seg.ts'), c.at('/seg.ts')], {}));
    },
    code: 'GABE_ERR_SEGMENT',
    error: /HTML page/,
  },
  {
    name: 'an empty segment among good ones',
    setup: (c) => {
      c.serve('/empty.ts', Buffer.alloc(0), 'video/mp2t');
      const uris = [...c.segments];
      uris[1] = c.at('/empty.ts');
      return c.serve('/index.m3u8', mediaPlaylist(uris, { extinf: (i) => `#EXTINF:${c.durations[i]},` }));
    },
    code: 'GABE_ERR_SEGMENT',
    error: /empty/,
  },
  {
    name: 'only empty segments',
    setup: (c) => {
      c.serve('/empty.ts', Buffer.alloc(0), 'video/mp2t');
      return c.serve('/index.m3u8', mediaPlaylist([c.at('/empty.ts'), c.at('/empty.ts')], {}));
    },
    code: 'GABE_ERR_SEGMENT',
    error: /empty body/,
  },
  {
    name: 'segments of random bytes',
    setup: (c) => {
      c.serve('/junk.ts', randomBytes(64 * 1024, 3), 'video/mp2t');
      return c.serve('/index.m3u8', mediaPlaylist([c.at('/junk.ts')], {}));
    },
    code: 'GABE_ERR_INTEGRITY',
    error: /not media ffmpeg can read/,
  },
  {
    name: 'a segment that answers 404',
    setup: (c) => c.serve('/index.m3u8', mediaPlaylist([c.segments[0]!, c.at('/gone.ts')], {})),
    code: 'GABE_ERR_SEGMENT',
    error: /HTTP 404/,
  },
  {
    name: 'a segment that answers 500 on every attempt',
    setup: (c) => {
      c.origin.route(c.path('/broken.ts'), { body: 'boom', status: 500 });
      return c.serve('/index.m3u8', mediaPlaylist([c.at('/broken.ts')], {}));
    },
    code: 'GABE_ERR_SEGMENT',
    error: /HTTP 500/,
  },
  {
    name: 'a segment cut short on every attempt',
    setup: (c) => {
      c.origin.addFault({ match: c.path('/short.ts'), truncate: { fraction: 0.5 } });
      c.serve('/short.ts', randomBytes(64 * 1024, 9), 'video/mp2t');
      return c.serve('/index.m3u8', mediaPlaylist([c.at('/short.ts')], {}));
    },
    code: 'GABE_ERR_SEGMENT',
    error: /segment 0 .*failed/,
  },
  {
    name: 'a segment that stalls after its headers',
    setup: (c) => {
      c.origin.addFault({
        match: c.path('/stall.ts'),
        stall: { ms: Number.POSITIVE_INFINITY, afterBytes: 10 },
      });
      c.serve('/stall.ts', randomBytes(64 * 1024, 9), 'video/mp2t');
      return c.serve('/index.m3u8', mediaPlaylist([c.at('/stall.ts')], {}));
    },
    code: 'GABE_ERR_SEGMENT',
    error: /timed out/,
  },
  {
    name: 'a segment URI with the javascript: scheme',
    setup: (c) => c.serve('/index.m3u8', mediaPlaylist(['javascript:alert(1)'], {})),
    code: 'GABE_ERR_SEGMENT',
    error: /only http and https/,
  },
  {
    name: 'a segment URI with the file: scheme',
    setup: (c) => c.serve('/index.m3u8', mediaPlaylist(['file:///etc/passwd'], {})),
    code: 'GABE_ERR_SEGMENT',
    error: /only http and https/,
  },
  {
    name: 'a segment on a port nobody listens on',
    setup: (c) => c.serve('/index.m3u8', mediaPlaylist(['http://127.0.0.1:9/seg.ts'], {})),
    code: 'GABE_ERR_SEGMENT',
    error: /ECONNREFUSED/,
  },
  {
    name: 'an init section (EXT-X-MAP) that answers 404',
    setup: (c) =>
      c.serve(
        '/index.m3u8',
        mediaPlaylist([c.at('/s.m4s')], { head: [`#EXT-X-MAP:URI="${c.at('/init.mp4')}"`] }),
      ),
    code: 'GABE_ERR_SEGMENT',
    error: /init section.*HTTP 404/,
  },
  // Redirects.
  {
    name: 'a redirect loop a → b → a',
    setup: (c) => {
      c.origin.redirect(c.path('/a.m3u8'), c.path('/b.m3u8'));
      c.origin.redirect(c.path('/b.m3u8'), c.path('/a.m3u8'));
      return c.at('/a.m3u8');
    },
    code: 'GABE_ERR_TOO_MANY_REDIRECTS',
    error: /redirects/,
  },
  {
    name: 'a chain of 50 redirects',
    setup: (c) => {
      for (let i = 0; i < 50; i++) c.origin.redirect(c.path(`/r${i}`), c.path(`/r${i + 1}`));
      c.serve('/r50', good(c));
      return c.at('/r0');
    },
    code: 'GABE_ERR_TOO_MANY_REDIRECTS',
    error: /redirects/,
  },
  {
    name: 'a redirect to a file: URL',
    setup: (c) => {
      c.origin.route(c.path('/index.m3u8'), (_req, res) => {
        res.writeHead(302, { Location: 'file:///etc/passwd', 'Content-Length': 0 }).end();
      });
      return c.at('/index.m3u8');
    },
    code: 'GABE_ERR_INVALID_URL',
    error: /only http and https/,
  },
  {
    name: 'a redirect without Location',
    setup: (c) => {
      c.origin.route(c.path('/index.m3u8'), (_req, res) => {
        res.writeHead(302, { 'Content-Length': 0 }).end();
      });
      return c.at('/index.m3u8');
    },
    code: 'GABE_ERR_HTTP_STATUS',
    error: /HTTP 302/,
  },
  // URLs accepted at the API that cannot be fetched.
  {
    name: 'an IPv6 literal URL nobody listens on',
    setup: (c) => `http://[::1]:${c.origin.port}/index.m3u8`,
    code: 'GABE_ERR_NETWORK',
    error: /ECONNREFUSED/,
  },
  {
    name: 'a URL with credentials',
    setup: (c) => c.serve('/index.m3u8', HTML_PAGE, 'text/html').replace('http://', 'http://user:secret@'),
    code: 'GABE_ERR_NOT_A_PLAYLIST',
    error: /HTML page/,
  },
  // The MP4 endpoint.
  {
    name: 'MP4: an HTML page',
    endpoint: '/download/mp4',
    setup: (c) => c.serve('/video.mp4', HTML_PAGE, 'text/html'),
    code: 'GABE_ERR_NOT_A_VIDEO',
    error: /HTML/,
  },
  {
    name: 'MP4: a JSON document',
    endpoint: '/download/mp4',
    setup: (c) => c.serve('/video.mp4', '{"error":"expired"}', 'application/json'),
    code: 'GABE_ERR_NOT_A_VIDEO',
    error: /JSON/,
  },
  {
    name: 'MP4: an HLS playlist',
    endpoint: '/download/mp4',
    setup: (c) => c.serve('/video.mp4', good(c)),
    code: 'GABE_ERR_NOT_A_VIDEO',
    error: /HLS playlist/,
  },
  {
    name: 'MP4: random bytes',
    endpoint: '/download/mp4',
    setup: (c) => c.serve('/video.mp4', randomBytes(64 * 1024, 13), 'video/mp4'),
    code: 'GABE_ERR_NOT_A_VIDEO',
    error: /not a video/,
  },
  {
    name: 'MP4: an empty body',
    endpoint: '/download/mp4',
    setup: (c) => c.serve('/video.mp4', Buffer.alloc(0), 'video/mp4'),
    code: 'GABE_ERR_NOT_A_VIDEO',
    error: /not a video|empty/,
  },
  {
    name: 'MP4: a 404',
    endpoint: '/download/mp4',
    setup: (c) => c.at('/nothing.mp4'),
    code: 'GABE_ERR_HTTP_STATUS',
    error: /HTTP 404/,
  },
  {
    name: 'MP4: a redirect loop',
    endpoint: '/download/mp4',
    setup: (c) => {
      c.origin.redirect(c.path('/a.mp4'), c.path('/b.mp4'));
      c.origin.redirect(c.path('/b.mp4'), c.path('/a.mp4'));
      return c.at('/a.mp4');
    },
    code: 'GABE_ERR_TOO_MANY_REDIRECTS',
    error: /redirects/,
  },
];

// ---------------------------------------------------------------------------------------------
// Names

const NAMES: NameCase[] = [
  { name: 'path traversal', videoName: '../../../../etc/passwd', expect: 'etc_passwd' },
  { name: 'an absolute path', videoName: '/var/lib/gabe/gabe.db', expect: 'var_lib_gabe_gabe.db' },
  { name: 'a Windows path', videoName: 'C:\\Windows\\System32\\evil', expect: 'C_Windows_System32_evil' },
  { name: 'NUL and control characters', videoName: 'a\u0000b\r\nc\u001b[31md', expect: 'a_b_c_[31md' },
  { name: 'a right-to-left override', videoName: 'invoice\u202Egnp.exe', expect: 'invoicegnp.exe' },
  { name: 'emoji and CJK', videoName: '🎬 映画 émoji', expect: '🎬 映画 émoji' },
  { name: 'a Windows device name', videoName: 'CON', expect: '_CON' },
  { name: 'only dots', videoName: '....', expect: 'video' },
  { name: 'a lone surrogate', videoName: 'a\ud800b', expect: /^a\uFFFD+b$/ },
  {
    name: '1000 characters (the schema maximum) cut to 200 bytes',
    videoName: 'é'.repeat(1000),
    expect: 'é'.repeat(100),
  },
];

// ---------------------------------------------------------------------------------------------

describe('hostile input', () => {
  let origin: Origin;
  let svc: TestService;
  let ts: HlsMediaFixture;
  let mp4: Mp4Fixture;
  let client = 0;
  let cases = 0;
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });

  before(async () => {
    [ts, mp4] = await Promise.all([makeHlsTs({ seconds: 4, segmentSeconds: 1 }), makeMp4({ seconds: 1 })]);
    origin = await startOrigin();
    origin.serveDir('/media/', ts.dir);
    origin.addFile('/clip.mp4', mp4.file);
    svc = await startTestService({
      max_jobs_per_ip: 0,
      max_retries: 1,
      connection_timeout: 2,
      max_concurrent_downloads: 2,
    });
    loopDelay.enable();
  });
  after(async () => {
    loopDelay.disable();
    await closeAllServices();
    await origin.close();
  });

  /** Every request comes from its own address: per-IP limits and the rate limit stay out of the way. */
  const remoteAddress = () => {
    client++;
    return `10.${(client >> 16) & 255}.${(client >> 8) & 255}.${client & 255}`;
  };

  function send(c: Pick<RequestCase, 'method' | 'url' | 'headers' | 'payload'>) {
    const raw = typeof c.payload === 'string' || Buffer.isBuffer(c.payload);
    return svc.app.inject({
      method: c.method ?? 'POST',
      url: c.url ?? '/download/',
      headers: { ...(c.payload === undefined ? {} : { 'content-type': 'application/json' }), ...c.headers },
      ...(c.payload === undefined
        ? {}
        : { payload: raw ? (c.payload as string | Buffer) : JSON.stringify(c.payload) }),
      remoteAddress: remoteAddress(),
    });
  }

  async function runJob(endpoint: string, payload: Record<string, unknown>, timeoutMs: number): Promise<Job> {
    const res = await send({ url: endpoint, payload });
    assert.equal(res.statusCode, 200, `submission refused: ${res.body.slice(0, 500)}`);
    return svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED', 'CANCELLED'], timeoutMs);
  }

  describe(`requests the API refuses (${REQUESTS.length} cases)`, () => {
    for (const c of REQUESTS) {
      const where = c.url ?? '/download/';
      const shown = where.length > 60 ? `${where.slice(0, 60)}…` : where;
      const title = `${c.method ?? 'POST'} ${shown}: ${c.name} → ${c.status} ${c.code}`;
      it(title, c.todo ? { todo: c.todo } : {}, async () => {
        cases++;
        const res = await send(c);
        assert.equal(res.statusCode, c.status, res.body.slice(0, 500));
        const answer = res.json() as { detail: unknown; code: string };
        assert.equal(answer.code, c.code, res.body.slice(0, 500));
        assert.ok(
          typeof answer.detail === 'string' ? answer.detail.length > 0 : Array.isArray(answer.detail),
          'detail says what is wrong',
        );
        if (c.detail) assert.match(JSON.stringify(answer.detail), c.detail);
        if (c.loc) {
          const detail = answer.detail as { loc: unknown[]; msg: string }[];
          assert.deepEqual(detail[0]?.loc, c.loc, res.body.slice(0, 500));
          assert.ok(detail[0]?.msg, 'each field error has a message');
        }
      });
    }
  });

  describe(`playlists, keys and media that fail the job (${PLAYLISTS.length} cases)`, () => {
    for (const [i, c] of PLAYLISTS.entries()) {
      const endpoint = c.endpoint ?? '/download/';
      const outcome = c.harmless ? 'COMPLETED (harmless)' : `FAILED ${c.code}`;
      it(`${endpoint}: ${c.name} → ${outcome}`, c.todo ? { todo: c.todo } : {}, async (t) => {
        cases++;
        origin.reset();
        const prefix = `/case${i}`;
        const ctx: CaseContext = {
          origin,
          path: (p) => `${prefix}${p}`,
          at: (p) => `${origin.url}${prefix}${p}`,
          serve: (p, data, contentType = M3U8) => {
            origin.route(`${prefix}${p}`, { body: data, contentType });
            return `${origin.url}${prefix}${p}`;
          },
          segments: ts.segments.map((s) => `${origin.url}/media/${s}`),
          durations: ts.segmentDurations,
          localFile: path.join(ts.dir, ts.segments[0]!),
        };
        const target = c.setup(ctx);
        const payload = typeof target === 'string' ? { url: target } : target;
        const rssBefore = process.memoryUsage().rss;
        let peak = rssBefore;
        const sampler = c.measure
          ? setInterval(() => {
              peak = Math.max(peak, process.memoryUsage().rss);
            }, 10)
          : undefined;
        const started = Date.now();
        let job: Job;
        try {
          job = await runJob(endpoint, payload, 30_000);
        } finally {
          clearInterval(sampler);
        }
        if (c.measure) {
          const mb = (n: number) => `${(n / 1048576).toFixed(0)} MB`;
          const rssAfter = process.memoryUsage().rss;
          t.diagnostic(
            `rss before ${mb(rssBefore)}, peak ${mb(peak)} (+${mb(peak - rssBefore)}), after ${mb(rssAfter)}; ` +
              `failed in ${Date.now() - started} ms`,
          );
          assert.ok(peak - rssBefore < 512 * 1048576, `memory grew by ${mb(peak - rssBefore)}`);
        }
        t.diagnostic(`${job.status} ${job.error_code ?? ''}: ${(job.error ?? '').slice(0, 300)}`);
        if (c.harmless) {
          assert.equal(job.status, 'COMPLETED', `${c.harmless}; got ${job.error_code}: ${job.error}`);
          const seconds = ts.segmentDurations.reduce((a, b) => a + b, 0);
          assert.ok(Math.abs((job.result?.duration_seconds ?? 0) - seconds) < 0.5, 'the whole media');
          if (c.warning) assert.match(job.result?.warnings?.join('\n') ?? '', c.warning);
          return;
        }
        assert.equal(
          job.status,
          'FAILED',
          `expected FAILED, got ${job.status}: ${JSON.stringify(job.result)}`,
        );
        assert.equal(job.error_code, c.code, `error: ${job.error}`);
        assert.match(job.error ?? '', c.error ?? /./);
        // The API shows the same, and the error reads as a sentence, not a stack or an object dump.
        const shown = (await send({ method: 'GET', url: `/job/${job.id}` })).json() as Job;
        assert.equal(shown.error, job.error);
        assert.equal(shown.error_code, c.code);
        assert.doesNotMatch(job.error ?? '', /\n\s+at |\[object Object\]|undefined/);
      });
    }
  });

  describe(`hostile video_name values are made safe (${NAMES.length} cases)`, () => {
    for (const c of NAMES) {
      it(`${c.name}: the output stays inside output_path with a safe name`, async () => {
        cases++;
        const job = await runJob(
          '/download/mp4',
          { url: `${origin.url}/clip.mp4`, video_name: c.videoName },
          30_000,
        );
        assert.equal(job.status, 'COMPLETED', job.error ?? '');
        const out = job.result!.output_path;
        assert.equal(path.dirname(out), path.resolve(svc.config.output_path));
        const base = path.basename(out, '.mp4').replace(/ \(\d+\)$/, '');
        if (typeof c.expect === 'string') assert.equal(base, c.expect);
        else assert.match(base, c.expect);
        assert.doesNotMatch(base, /[/\\\u0000-\u001f\u202a-\u202e]/);
        assert.ok(Buffer.byteLength(base) <= 200, `${Buffer.byteLength(base)} bytes`);
      });
    }
  });

  describe('afterwards', () => {
    it('has run at least 60 hostile cases', (t) => {
      const total = REQUESTS.length + PLAYLISTS.length + NAMES.length;
      t.diagnostic(
        `${total} cases: ${REQUESTS.length} requests, ${PLAYLISTS.length} playlists/media, ${NAMES.length} names; ${cases} ran`,
      );
      assert.ok(total >= 60);
    });

    it('GET /health answers 200 and the service still takes jobs', async (t) => {
      const health = await send({ method: 'GET', url: '/health' });
      assert.equal(health.statusCode, 200, health.body);
      assert.equal(health.json().status, 'ok');
      const job = await runJob('/download/', { url: `${origin.url}/media/${ts.playlistName}` }, 60_000);
      assert.equal(job.status, 'COMPLETED', job.error ?? '');
      t.diagnostic(
        `event loop delay over the suite: max ${(loopDelay.max / 1e6).toFixed(0)} ms, ` +
          `p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms`,
      );
    });

    it('no payload polluted Object.prototype', () => {
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
      assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
    });
  });
});
