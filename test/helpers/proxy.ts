import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';

export interface TestProxy {
  url: string;
  /** host:port targets of CONNECT tunnels and absolute-form requests, in order. */
  targets: string[];
  close(): Promise<void>;
}

/**
 * A forwarding HTTP proxy on loopback: CONNECT tunnels (what undici's ProxyAgent uses) and plain
 * absolute-form GETs. It records where each request went, so a test can prove traffic went through it.
 * `hosts` maps made-up names to addresses, as the proxy's own DNS would (there is no network here).
 */
export async function startProxy(options: { hosts?: Record<string, string> } = {}): Promise<TestProxy> {
  const hosts = options.hosts ?? {};
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const target = new URL(req.url ?? '');
    targets.push(target.host);
    const upstream = http.request(
      target,
      { method: req.method, headers: req.headers, host: hosts[target.hostname] ?? target.hostname },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    const [host, port] = (req.url ?? '').split(':');
    targets.push(req.url ?? '');
    const upstream = net.connect(Number(port), hosts[host ?? ''] ?? host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    targets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
