import cliProgress from 'cli-progress';
import type { JobProgress } from '../jobs/types.js';

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** A progress bar on a terminal, a plain line every few seconds otherwise (logs, CI, pipes). */
export function progressReporter(stream: NodeJS.WriteStream): {
  update(s: JobProgress): void;
  stop(): void;
} {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: ' {bar} {percentage}% | {detail} | {speed} | ETA {eta_formatted}',
        hideCursor: true,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(s) {
        const detail =
          s.total_segments > 0
            ? `${s.downloaded_segments}/${s.total_segments} segments`
            : mb(s.downloaded_bytes);
        const payload = { detail, speed: `${mb(s.speed_bps)}/s` };
        if (!started) {
          bar.start(100, 0, payload);
          started = true;
        }
        bar.update(Math.floor(s.progress), payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastLine = 0;
  return {
    update(s) {
      if (Date.now() - lastLine < 2000) return;
      lastLine = Date.now();
      const parts = [`${s.progress.toFixed(1)}%`, mb(s.downloaded_bytes)];
      if (s.total_segments > 0) parts.push(`${s.downloaded_segments}/${s.total_segments} segments`);
      parts.push(`${mb(s.speed_bps)}/s`);
      if (s.eta_seconds !== null) parts.push(`ETA ${Math.round(s.eta_seconds)} s`);
      stream.write(`${parts.join('  ')}\n`);
    },
    stop() {},
  };
}
