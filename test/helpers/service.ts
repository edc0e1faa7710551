import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Job, JobStatus } from '../../src/jobs/types.js';
import { type FfmpegTools, locateFfmpeg } from '../../src/media/ffmpeg/locate.js';
import { type Config, loadConfig } from '../../src/service/config.js';
import { createLogger } from '../../src/service/log.js';
import { createService, type Service, type ServiceOptions } from '../../src/service/server.js';
import { tempDir } from './tmp.js';

let tools: Promise<FfmpegTools> | null = null;
const live = new Set<() => Promise<void>>();

/** Closes every service a test file started; call it from the file's `after` hook. */
export async function closeAllServices(): Promise<void> {
  await Promise.all([...live].map((close) => close()));
  live.clear();
}

export const testFfmpeg = () => {
  tools ??= locateFfmpeg({ ffmpegPath: null });
  return tools;
};

export interface TestService extends Service {
  dir: string;
  /** Base URL of the API when started with `listen: true`. */
  url: string;
  waitFor(id: string, statuses: JobStatus[] | ((job: Job) => boolean), timeoutMs?: number): Promise<Job>;
  /** Closes the service (jobs stop as on SIGTERM) and starts a new one on the same files. */
  restart(): Promise<TestService>;
}

/**
 * A real service on real files: SQLite in a temp folder, the real log file, real ffmpeg. Started with
 * a config.json written to disk, as a user would, so config loading is exercised too.
 */
export async function startTestService(
  overrides: Partial<Record<keyof Config, unknown>> = {},
  options: { listen?: boolean; dir?: string; downloaders?: ServiceOptions['downloaders'] } = {},
): Promise<TestService> {
  const dir = options.dir ?? tempDir('gabe-svc-');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({ allow_private_networks: true, connection_timeout: 5, ...overrides }, null, 2),
  );
  const config = loadConfig({ file, env: {} });
  const log = createLogger({ logPath: config.log_path, stdout: false });
  const service = await createService(config, {
    log,
    ffmpeg: await testFfmpeg(),
    downloaders: options.downloaders,
  });
  let url = '';
  if (options.listen) url = await service.app.listen({ host: '127.0.0.1', port: 0 });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await service.close();
  };
  live.add(close);
  const ts: TestService = {
    ...service,
    close,
    dir,
    url,
    async waitFor(id, statuses, timeoutMs = 60_000) {
      const ok = typeof statuses === 'function' ? statuses : (j: Job) => statuses.includes(j.status);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const job = service.store.get(id);
        if (job && ok(job)) return job;
        if (Date.now() > deadline) {
          throw new Error(
            `job ${id} did not reach the expected state in ${timeoutMs} ms: ${JSON.stringify(job)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async restart() {
      await close();
      return startTestService(overrides, { ...options, dir });
    },
  };
  return ts;
}
