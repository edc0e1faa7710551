/**
 * The same JobStore cases (test/helpers/store-contract.ts) against the SQLite store on a temp file and
 * the Redis store on a real redis-server: what one does, the other must.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import type { JobStore } from '../../src/jobs/job-store.js';
import { RedisJobStore } from '../../src/jobs/redis-store.js';
import { SqliteJobStore } from '../../src/jobs/store.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { storeContract } from '../helpers/store-contract.js';
import { tempDir } from '../helpers/tmp.js';

storeContract('SQLite', async () => {
  const file = path.join(tempDir(), 'jobs.db');
  const stores: SqliteJobStore[] = [new SqliteJobStore(file)];
  return {
    store: stores[0]!,
    async second(): Promise<JobStore> {
      const s = new SqliteJobStore(file);
      stores.push(s);
      return s;
    },
    async close() {
      for (const s of stores) s.close();
    },
  };
});

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(() => server.stop());

// One server for the file; each case gets a prefix of its own, so it starts from an empty store.
storeContract('Redis', async () => {
  const prefix = `t-${randomUUID()}`;
  const connections = [new Redis(server.url)];
  return {
    store: new RedisJobStore(connections[0]!, prefix),
    async second(): Promise<JobStore> {
      const redis = new Redis(server.url);
      connections.push(redis);
      return new RedisJobStore(redis, prefix);
    },
    async close() {
      await Promise.all(connections.map((c) => c.quit()));
    },
  };
});
