import net, { type AddressInfo, type Socket } from 'node:net';

export interface TestSocks {
  url: string;
  /** host:port of every CONNECT, in order. */
  targets: string[];
  close(): Promise<void>;
}

/**
 * A minimal SOCKS5 server (RFC 1928: no authentication, CONNECT only, IPv4 and domain names) on
 * loopback, so the socks5:// proxy path runs against a real peer. `hosts` maps made-up names to
 * addresses, as the proxy's own DNS would (socks5h://: the proxy resolves the target).
 */
export async function startSocks5(options: { hosts?: Record<string, string> } = {}): Promise<TestSocks> {
  const hosts = options.hosts ?? {};
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'request' | 'piping' = 'greeting';
    client.on('data', (chunk: Buffer) => {
      if (stage === 'piping') return;
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'greeting') {
        if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
        buf = buf.subarray(2 + buf[1]!);
        client.write(Buffer.from([5, 0]));
        stage = 'request';
      }
      if (stage === 'request') {
        if (buf.length < 5) return;
        const atyp = buf[3];
        let host: string;
        let end: number;
        if (atyp === 1) {
          end = 10;
          if (buf.length < end) return;
          host = [...buf.subarray(4, 8)].join('.');
        } else if (atyp === 3) {
          end = 5 + buf[4]! + 2;
          if (buf.length < end) return;
          host = buf.subarray(5, 5 + buf[4]!).toString();
        } else {
          client.end(Buffer.from([5, 8, 0, 1, 0, 0, 0, 0, 0, 0]));
          return;
        }
        const port = buf.readUInt16BE(end - 2);
        const rest = buf.subarray(end);
        stage = 'piping';
        targets.push(`${host}:${port}`);
        const upstream = net.connect(port, hosts[host] ?? host, () => {
          client.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          if (rest.length) upstream.write(rest);
          client.pipe(upstream);
          upstream.pipe(client);
        });
        track(upstream);
        upstream.on('error', () => client.destroy());
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `socks5://127.0.0.1:${port}`,
    targets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
