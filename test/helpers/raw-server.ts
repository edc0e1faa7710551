/**
 * Raw TCP servers on loopback that write exactly the bytes a test wants: the origins that misbehave on
 * purpose (bad framing, floods, drips) which a well-behaved HTTP server library would never produce.
 */
import net from 'node:net';

export interface RawConn {
  socket: net.Socket;
  /** Request heads seen on this connection, as text (without the blank line). */
  requests: string[];
}

export interface RawServer {
  url: string;
  port: number;
  conns: RawConn[];
  close(): Promise<void>;
}

/**
 * A TCP server that hands each request head to `respond`, which answers however it wants (or not at
 * all). Sockets still open at close() are destroyed.
 */
export async function rawServer(
  respond: (socket: net.Socket, request: string, conn: RawConn) => void,
  host = '127.0.0.1',
): Promise<RawServer> {
  const conns: RawConn[] = [];
  const server = net.createServer((socket) => {
    const conn: RawConn = { socket, requests: [] };
    conns.push(conn);
    let pending = '';
    socket.on('data', (d) => {
      pending += d.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const request = pending.slice(0, end);
        pending = pending.slice(end + 4);
        conn.requests.push(request);
        respond(socket, request, conn);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    conns,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The path of a request head ("GET /a/b?x HTTP/1.1" -> "/a/b"). */
export function requestPath(request: string): string {
  return (request.split(' ')[1] ?? '').split('?')[0] ?? '';
}

/** Writes `data` one byte per write, so every boundary of the parser is crossed. */
export async function trickle(socket: net.Socket, data: string | Buffer): Promise<void> {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data, 'latin1');
  for (let i = 0; i < b.length; i++) {
    if (socket.destroyed) return;
    socket.write(b.subarray(i, i + 1));
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * Writes `data` at `bytesPerSecond` until it is all out or the client goes away: the slow-loris origin.
 * Resolves when it stops.
 */
export async function drip(socket: net.Socket, data: string | Buffer, bytesPerSecond: number): Promise<void> {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data, 'latin1');
  const step = Math.max(1, Math.round(bytesPerSecond / 10));
  for (let i = 0; i < b.length && !socket.destroyed; i += step) {
    socket.write(b.subarray(i, i + step));
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Calls `write` again and again (a flood of 1xx heads, endless trailers) while the socket takes it,
 * yielding to the event loop between writes, until the client closes the connection or `stop` says so.
 */
export async function flood(
  socket: net.Socket,
  write: () => string | Buffer,
  stop?: () => boolean,
): Promise<number> {
  let sent = 0;
  while (!socket.destroyed && !stop?.()) {
    const piece = write();
    sent += piece.length;
    if (!socket.write(piece)) await new Promise((r) => socket.once('drain', r).once('close', r));
    else await new Promise((r) => setImmediate(r));
  }
  return sent;
}
