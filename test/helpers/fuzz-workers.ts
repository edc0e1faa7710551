/**
 * The worker threads the fuzzers run their cases in, with a watchdog: a worker writes the index of the
 * case it is on and when it began into a shared `progress` buffer (Float64Array [index, started ms],
 * index -1 between cases), and a case that runs longer than `hangMs` terminates its worker and is
 * reported as a hang with its index, so it can be replayed instead of blocking the suite.
 */
import { Worker } from 'node:worker_threads';

/**
 * Starts the test file at `self` (its import.meta.url) as a worker through tsx, which workers do not
 * inherit from `--import tsx`; the file sees `workerData` under `key`.
 */
export function startFuzzWorker(self: string, key: string, input: unknown): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(self)}, ${JSON.stringify(self)}))`;
  return new Worker(code, { eval: true, workerData: { [key]: input } });
}

/**
 * Waits for the worker's one result message. A case still running after `hangMs` ends the worker
 * with `onHang(index, ms)` as its result; a worker that exits without a result is an error.
 */
export function watchFuzzWorker<R>(
  worker: Worker,
  progressBuffer: SharedArrayBuffer,
  hangMs: number,
  onHang: (index: number, ms: number) => R,
): Promise<R> {
  const progress = new Float64Array(progressBuffer);
  return new Promise((resolve, reject) => {
    const watchdog = setInterval(() => {
      const running = Date.now() - (progress[1] ?? 0);
      if (progress[0] !== -1 && running > hangMs) {
        clearInterval(watchdog);
        void worker.terminate();
        resolve(onHang(progress[0] ?? -1, running));
      }
    }, 250);
    worker.once('message', (r: R) => {
      clearInterval(watchdog);
      resolve(r);
      void worker.terminate();
    });
    worker.once('error', (err) => {
      clearInterval(watchdog);
      reject(err);
    });
    worker.once('exit', (code) => {
      clearInterval(watchdog);
      reject(new Error(`the fuzz worker exited (${code}) without a result, in case ${progress[0]}`));
    });
  });
}

/** A fresh progress buffer, marked "between cases" from now. */
export function fuzzProgress(): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(16);
  const progress = new Float64Array(buffer);
  progress[0] = -1;
  progress[1] = Date.now();
  return buffer;
}

/** What each fuzz worker sends back. */
export interface FuzzWorkerResult {
  done: number;
  failures: { index: number; message: string }[];
  slowest: { index: number; ms: number };
  outcomes: Record<string, number>;
}

/** The fuzz run over all workers: `run(first)` runs the cases first, first + workers, … */
export async function runFuzzWorkers<R extends FuzzWorkerResult>(
  workers: number,
  run: (first: number) => Promise<R>,
) {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: workers }, (_, first) => run(first)));
  const outcomes: Record<string, number> = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
  }
  const byCase = new Map<number, string[]>();
  for (const f of results.flatMap((r) => r.failures).sort((a, b) => a.index - b.index))
    byCase.set(f.index, [...(byCase.get(f.index) ?? []), f.message]);
  return {
    results,
    seconds: (performance.now() - started) / 1000,
    done: results.reduce((n, r) => n + r.done, 0),
    slowest: results.reduce((a, r) => (r.slowest.ms > a.ms ? r.slowest : a), { index: -1, ms: 0 }),
    outcomes,
    /** The failures' messages by case index. */
    byCase,
  };
}

/** The first `max` failing cases, each with its messages and what `describe` says of it. */
export function failureReport(
  byCase: ReadonlyMap<number, string[]>,
  max: number,
  describe: (index: number) => string,
): string {
  return [...byCase]
    .slice(0, max)
    .map(([index, messages]) => `${messages.join('\n')}\n${describe(index)}`)
    .join('\n\n');
}
