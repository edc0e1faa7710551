/**
 * A real redis-server for tests, on 127.0.0.1 and a free port, reached only through a client.
 *
 * ```ts
 * const redis = await startRedis();                     // in-memory only: nothing written to disk
 * const durable = await startRedis({ persistent: true }); // AOF fsynced on every write, in a temp dir
 * redis.url                                             // 'redis://127.0.0.1:PORT'
 * await durable.kill(); await durable.start();          // SIGKILL, then the same port and data again
 * await redis.stop();                                   // SIGTERM and wait for the exit
 * ```
 *
 * Every server still running when the test process exits is killed (SIGKILL), so a failed test never
 * leaves one behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { tempDir } from './tmp.js';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** The running server's process id (null while it is down): the bench counts its CPU. */
  readonly pid: number | null;
  /** SIGTERM (Redis shuts down cleanly), resolved once the process has exited. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, nothing flushed beyond what appendfsync already wrote. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data folder; resolves once it answers PING. */
  start(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A port nobody listens on now (the kernel's pick for port 0, released again). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** Whether a RESP PING to the port gets +PONG back (false on refusal, LOADING or any other answer). */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return once(child, 'exit').then(() => undefined);
}

export async function startRedis(opts: { persistent?: boolean } = {}): Promise<RedisServer> {
  const dir = tempDir('gabe-redis-');
  const durability = opts.persistent
    ? ['--appendonly', 'yes', '--appendfsync', 'always', '--save', '']
    : ['--save', '', '--appendonly', 'no'];
  let port = 0;
  let child: ChildProcess | null = null;

  /** Spawns on `port` and waits for PING; false when the process exits first (the port was taken). */
  async function launch(): Promise<boolean> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...durability];
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout?.on('data', (c: Buffer) => {
      output = (output + c.toString()).slice(-4000);
    });
    proc.stderr?.on('data', (c: Buffer) => {
      output = (output + c.toString()).slice(-4000);
    });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        if (/Address already in use/.test(output)) return false;
        throw new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode}): ${output}`);
      }
      if (await pings(port)) {
        child = proc;
        return true;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    proc.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not answer PING within 15 s: ${output}`);
  }

  // Between freePort() releasing a port and redis binding it, another process may take it: try again.
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    if (await launch()) break;
    if (attempt >= 5) throw new Error('no free port for redis-server after 6 attempts');
  }

  const signal = async (sig: NodeJS.Signals) => {
    const proc = child;
    if (!proc) return;
    child = null;
    proc.kill(sig);
    await exited(proc);
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return (child as ChildProcess | null)?.pid ?? null;
    },
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    async start() {
      if (child) throw new Error('redis-server is already running');
      if (!(await launch())) throw new Error(`port ${port} was taken while redis-server was down`);
    },
  };
}
