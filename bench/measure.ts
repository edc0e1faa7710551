/**
 * Measuring a process tree on Linux: wall time, CPU seconds and peak memory.
 *
 * - wall: monotonic clock from spawn to exit, measured here.
 * - CPU: user + system seconds from GNU time, which reports the process and every descendant it
 *   waited for (getrusage RUSAGE_CHILDREN accumulates through the tree): gabe's ffmpeg/ffprobe,
 *   yt-dlp's ffmpeg fix-up. For a long-running server (the API path) it is the difference of
 *   utime + stime + cutime + cstime in /proc/<pid>/stat over the window.
 * - peak RSS (tree): the process tree is walked through /proc/<pid>/task/<tid>/children every
 *   `sampleMs` and the resident set sizes are summed; the largest sum seen is the peak. Shared pages
 *   (libraries) count once per process, so this over-states slightly; a peak shorter than the
 *   sampling interval can be missed.
 * - max RSS (one process): GNU time's %M, the largest resident set of any single process in the tree.
 */

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';

function getconf(name: string, fallback: number): number {
  try {
    const n = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : fallback;
  } catch {
    return fallback;
  }
}

export const PAGE_SIZE = getconf('PAGESIZE', 4096);
export const CLOCK_TICKS = getconf('CLK_TCK', 100);
export const MB = 1024 * 1024;

export const TIME_BIN = '/usr/bin/time';

export function hasGnuTime(): boolean {
  return existsSync(TIME_BIN);
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tasks) {
    const text = readText(`/proc/${pid}/task/${tid}/children`);
    if (!text) continue;
    for (const c of text.trim().split(/\s+/)) if (c) out.push(Number(c));
  }
  return out;
}

/** Resident bytes, and the anonymous part of them (heap, stacks: resident minus file-backed and shmem). */
export function memBytes(pid: number): { rss: number; anon: number } {
  const text = readText(`/proc/${pid}/statm`);
  if (!text) return { rss: 0, anon: 0 };
  const f = text.split(' ');
  const resident = Number(f[1] ?? 0);
  const shared = Number(f[2] ?? 0);
  return { rss: resident * PAGE_SIZE, anon: Math.max(0, resident - shared) * PAGE_SIZE };
}

/** utime + stime + cutime + cstime of a live process, in seconds (children: the ones it waited for). */
export function cpuSeconds(pid: number): number | null {
  const text = readText(`/proc/${pid}/stat`);
  if (!text) return null;
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3 (index 0 here); utime..cstime are fields 14..17 → indexes 11..14.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
  return ticks / CLOCK_TICKS;
}

/** CPU seconds the whole machine spent busy (all cores, from /proc/stat), to see other load. */
export function systemBusySeconds(): number | null {
  const line = readText('/proc/stat')?.split('\n')[0];
  if (!line?.startsWith('cpu ')) return null;
  // user nice system idle iowait irq softirq steal …: busy = everything but idle and iowait.
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / CLOCK_TICKS;
}

/**
 * Wraps a measured window: the CPU the rest of the machine used meanwhile (busy seconds of all cores,
 * minus the tool's own and minus this process's and the origin's) tells how noisy the sample is.
 */
export interface Background {
  /** CPU seconds of this harness (and the given helper processes, e.g. the origin) in the window. */
  harness_cpu_s: number;
  /** CPU seconds the rest of the machine used in the window. */
  other_cpu_s: number | null;
  /** The same as an average number of busy cores. */
  other_cores: number | null;
}

export function backgroundMeter(otherPids: number[]): { stop(toolCpu: number | null): Background } {
  const t0 = performance.now();
  const sys0 = systemBusySeconds();
  const own0 = process.cpuUsage();
  const others0 = otherPids.map((p) => cpuSeconds(p) ?? 0);
  return {
    stop(toolCpu) {
      const sys1 = systemBusySeconds();
      const own = process.cpuUsage(own0);
      const harness =
        (own.user + own.system) / 1e6 +
        otherPids.reduce((sum, p, i) => sum + ((cpuSeconds(p) ?? 0) - others0[i]!), 0);
      const other =
        sys0 === null || sys1 === null || toolCpu === null
          ? null
          : Math.max(0, sys1 - sys0 - toolCpu - harness);
      const window = (performance.now() - t0) / 1000;
      return {
        harness_cpu_s: round(harness, 2),
        other_cpu_s: other === null ? null : round(other, 2),
        other_cores: other === null || window <= 0 ? null : round(other / window, 2),
      };
    },
  };
}

function exeOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
}

function threadCount(pid: number): number {
  const m = /^Threads:\s+(\d+)/m.exec(readText(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) : 0;
}

/**
 * A child caught between fork() and exec() (node spawning ffmpeg) is still a single-threaded copy of
 * its parent: its RSS is the parent's pages, shared copy-on-write, and would count the parent twice.
 */
function midSpawn(pid: number, parentExe: string | null): boolean {
  return parentExe !== null && exeOf(pid) === parentExe && threadCount(pid) === 1;
}

/** Every pid in the tree under `root` (root included), leaving out children caught mid-spawn. */
export function treePids(root: number): number[] {
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    const children = childrenOf(pid);
    if (children.length === 0) continue;
    const exe = exeOf(pid);
    for (const c of children) if (!midSpawn(c, exe)) stack.push(c);
  }
  return out;
}

/** Polls a process tree and keeps the largest summed RSS (and, separately, the largest anonymous sum). */
export class TreeSampler {
  peakBytes = 0;
  peakAnonBytes = 0;
  peakProcesses = 0;
  samples = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly root: number,
    private readonly includeRoot: boolean,
  ) {}

  /** The processes at the peak: command name and RSS in MB, largest first. */
  peakBreakdown: { comm: string; mb: number }[] = [];

  sample(): void {
    const pids = treePids(this.root);
    let total = 0;
    let anon = 0;
    const seen: { pid: number; rss: number }[] = [];
    for (const pid of pids) {
      if (pid === this.root && !this.includeRoot) continue;
      const m = memBytes(pid);
      if (m.rss > 0) seen.push({ pid, rss: m.rss });
      total += m.rss;
      anon += m.anon;
    }
    this.samples++;
    this.peakAnonBytes = Math.max(this.peakAnonBytes, anon);
    if (total > this.peakBytes) {
      this.peakBytes = total;
      this.peakProcesses = seen.length;
      this.peakBreakdown = seen
        .sort((a, b) => b.rss - a.rss)
        .map(({ pid, rss }) => ({
          comm: readText(`/proc/${pid}/comm`)?.trim() ?? '?',
          mb: round(rss / MB, 1),
        }));
    }
  }

  start(intervalMs = 50): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

export interface Measurement {
  ok: boolean;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  wall_s: number;
  cpu_user_s: number | null;
  cpu_sys_s: number | null;
  cpu_s: number | null;
  peak_rss_tree_mb: number;
  /** Peak of the tree's anonymous memory (RSS without shared-library and other file-backed pages). */
  peak_anon_tree_mb: number;
  max_rss_proc_mb: number | null;
  processes_at_peak: number;
  /** What made up the peak: each process's command name and RSS. */
  peak_breakdown: { comm: string; mb: number }[];
  stderr_tail: string;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  sampleMs?: number;
}

/** Runs `cmd args` under GNU time in its own process group and measures the whole tree. */
export async function measure(cmd: string, args: string[], o: MeasureOptions): Promise<Measurement> {
  const timeFile = path.join(tmpdir(), `gabe-bench-time-${process.pid}-${Date.now()}.txt`);
  const useTime = hasGnuTime();
  const argv = useTime ? ['-f', '%e %U %S %M', '-o', timeFile, cmd, ...args] : args;
  const started = performance.now();
  const child = spawn(useTime ? TIME_BIN : cmd, argv, {
    cwd: o.cwd,
    env: o.env,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const pid = child.pid!;
  // Under GNU time the root is `time` itself (about 1-2 MB); only what it runs is counted.
  const sampler = new TreeSampler(pid, !useTime).start(o.sampleMs ?? 50);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-4000);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, o.timeoutMs);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve) => {
      child.once('error', (err) => {
        stderr += String(err);
        resolve({ code: null, signal: null });
      });
      child.once('exit', (code, signal) => resolve({ code, signal }));
    },
  );
  const wall = (performance.now() - started) / 1000;
  clearTimeout(timer);
  sampler.stop();
  // Anything the tool left running in its group (it should not) goes now.
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is empty
  }
  let user: number | null = null;
  let sys: number | null = null;
  let maxRss: number | null = null;
  let exitCode = code;
  if (useTime) {
    const text = readText(timeFile) ?? '';
    rmSync(timeFile, { force: true });
    // GNU time writes "Command exited with non-zero status N" before the numbers on failure.
    const m = /(\d+\.\d+) (\d+\.\d+) (\d+\.\d+) (\d+)\s*$/.exec(text.trim());
    if (m) {
      user = Number(m[2]);
      sys = Number(m[3]);
      maxRss = Number(m[4]) / 1024;
    }
    const status = /exited with non-zero status (\d+)/.exec(text);
    if (status) exitCode = Number(status[1]);
  }
  return {
    ok: exitCode === 0 && !timedOut,
    exit_code: exitCode,
    signal,
    timed_out: timedOut,
    wall_s: round(wall, 3),
    cpu_user_s: user,
    cpu_sys_s: sys,
    cpu_s: user !== null && sys !== null ? round(user + sys, 2) : null,
    peak_rss_tree_mb: round(sampler.peakBytes / MB, 1),
    peak_anon_tree_mb: round(sampler.peakAnonBytes / MB, 1),
    max_rss_proc_mb: maxRss === null ? null : round(maxRss, 1),
    processes_at_peak: sampler.peakProcesses,
    peak_breakdown: sampler.peakBreakdown,
    stderr_tail: stderr.trim().split('\n').slice(-8).join('\n'),
  };
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The machine a result was measured on, for the results files (every bench writes the same facts). */
export function machineFacts() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    total_mem_gb: round(os.totalmem() / 1024 ** 3, 1),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/** The 1, 5 and 15 minute load averages, rounded. */
export const loadAverage = () => os.loadavg().map((x) => round(x, 2));
