/**
 * Answers of hostile origins, as raw bytes on a socket (see raw-server.ts): the floods, drips and
 * protocol violations of issue 11 ("no origin can hold the service"), shared by the transport tests
 * (net-limits.test.ts) and the job tests against the real service (hostile-origin.test.ts).
 */
import type net from 'node:net';
import { drip, flood } from './raw-server.js';

/** A header line of `n` bytes, CRLF included. */
export const headerLine = (name: string, n: number) => `${name}: ${'a'.repeat(n - name.length - 4)}\r\n`;

export const HOSTILE = {
  /** 100 Continue heads without end, as fast as the client takes them. */
  'continue-flood': (socket) => {
    void flood(socket, () => 'HTTP/1.1 100 Continue\r\n\r\n');
  },
  /** 103 Early Hints without end. */
  'hints-flood': (socket) => {
    void flood(socket, () => 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n');
  },
  /** Five interim responses of 15 KB each: none too large alone, 75 KB together. */
  'interim-bytes': (socket) => {
    for (let i = 0; i < 5; i++) socket.write(`HTTP/1.1 103 Early Hints\r\n${headerLine('link', 15_000)}\r\n`);
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  },
  /** A head dripped at 40 bytes/s that never ends: bytes keep coming, so no idle timeout fires. */
  'head-drip': (socket) => {
    void drip(socket, `HTTP/1.1 200 OK\r\n${headerLine('x-slow', 100_000)}`, 40);
  },
  /** A chunked body, then trailer fields without end, as fast as the client takes them. */
  'trailer-flood': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n');
    let i = 0;
    void flood(socket, () => headerLine(`x-t${i++}`, 1000));
  },
  /** A chunked body, then one trailer field dripped at 40 bytes/s. */
  'trailer-drip': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n');
    void drip(socket, headerLine('x-trailer', 100_000), 40);
  },
  /** A 1 MB body at 100 bytes/s: never idle for long, far below a 1000 bytes/s floor. */
  'slow-body': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n');
    void drip(socket, Buffer.alloc(1_000_000, 0x47), 100);
  },
  /** Not HTTP at all. */
  'not-http': (socket) => {
    socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
  },
  /** A chunk size that is not hexadecimal, mid-body. */
  'bad-chunk': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx');
  },
  /** A 70 KB head (the limit is 64 KB). */
  'huge-head': (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\n${headerLine('x-big', 70_000)}Content-Length: 2\r\n\r\nok`);
  },
} satisfies Record<string, (socket: net.Socket) => void>;

export type HostileAnswer = keyof typeof HOSTILE;
