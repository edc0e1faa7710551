/**
 * A real S3 server for tests (s3rver, files in a temp folder) on 127.0.0.1 and an ephemeral port,
 * reached only through the AWS SDK like production reaches S3.
 *
 * ```ts
 * const s3 = await startS3Server();
 * s3.config            // a config storage.s3 object pointing at it (bucket, endpoint, keys, path style)
 * s3.client            // an S3Client for the test's own checks (HeadObject after a delete ...)
 * await s3.stop()      // S3 down: connections refused
 * await s3.start()     // back on the same port with the same objects
 * s3.inFlight()        // responses the server is still writing (a leaked body stays here)
 * s3.requests          // every request seen, 'PUT /bucket/key?partNumber=1&uploadId=…'
 * // AbortMultipartUpload and ListMultipartUploads work too (s3rver lacks them: s3rver-multipart.ts)
 * await s3.close()      // at the end
 * ```
 */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../../src/service/config.js';
import { S3Files } from '../../src/storage/s3.js';
import { addMultipartCalls, type S3rverWithStore } from './s3rver-multipart.js';
import { tempDir } from './tmp.js';

// s3rver ships no types; the little of it used here is typed by hand.
interface S3rverInstance extends S3rverWithStore {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer: Server;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

export type S3Settings = Config['storage']['s3'];

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  config: S3Settings;
  client: S3Client;
  /** Responses the server has started and not yet finished or closed. */
  inFlight(): number;
  /** Every request the server has seen, as `METHOD /path?query`. */
  requests: string[];
  stop(): Promise<void>;
  start(): Promise<void>;
  /** stop() and the test client's sockets closed: the end of a test file. */
  close(): Promise<void>;
}

// s3rver accepts any signature when it knows the key pair; these are its documented defaults.
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';

export async function startS3Server(bucket = 'gabe-test'): Promise<TestS3Server> {
  const directory = tempDir('gabe-s3-');
  let port = 0;
  let server: S3rverInstance | null = null;
  const sockets = new Set<Socket>();
  let open = 0;
  const requests: string[] = [];

  const start = async (): Promise<void> => {
    if (server) return;
    // A new instance each time: s3rver closes its logger with its HTTP server, so one cannot run twice.
    const s = new S3rver({ address: '127.0.0.1', port, silent: true, directory, vhostBuckets: false });
    // AbortMultipartUpload and ListMultipartUploads, which s3rver lacks (s3rver-multipart.ts).
    addMultipartCalls(s);
    const address = await s.run();
    port = address.port;
    s.httpServer.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    s.httpServer.on('request', (req, res) => {
      requests.push(`${req.method} ${req.url}`);
      open++;
      res.once('close', () => open--);
    });
    server = s;
  };

  const stop = async (): Promise<void> => {
    if (!server) return;
    const s = server;
    server = null;
    // close() alone waits for the SDK's keep-alive sockets; "down" means they are gone now.
    for (const socket of sockets) socket.destroy();
    await s.close();
  };

  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  const config: S3Settings = {
    bucket,
    endpoint,
    region: 'us-east-1',
    prefix: 'gabe/',
    access_key_id: ACCESS_KEY,
    secret_access_key: SECRET_KEY,
    force_path_style: true,
    presign: false,
    presign_expires_seconds: 3600,
    upload_retries: 5,
  };
  // The service's own client construction (endpoint, path style, checksums, NodeVersionSupportWarning off).
  const client = new S3Files(config).client;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const close = async (): Promise<void> => {
    client.destroy();
    await stop();
  };
  return { endpoint, bucket, config, client, inFlight: () => open, requests, stop, start, close };
}
