/**
 * Turning samples into the summary: medians, ratios to the reference peers, the markdown tables and
 * a dependency-free SVG bar chart.
 */

import type { Measurement } from './measure.js';
import { median, round } from './measure.js';
import type { OriginStats } from './origin.js';
import type { ContentKind } from './tools.js';

export interface Sample extends Measurement {
  tool: string;
  label: string;
  kind: ContentKind;
  phase: 'main' | 'sweep' | 'long';
  round: number;
  /** Segment concurrency (sweep). */
  concurrency: number | null;
  segments: number;
  bytes: number;
  verified: boolean;
  verify_note: string;
  origin: OriginStats | null;
  /** API path only: the server's RSS just before the job was submitted. */
  server_idle_rss_mb: number | null;
  /** CPU seconds of the origin and this harness during the run (not part of the tool's numbers). */
  harness_cpu_s: number;
  /** CPU seconds everything else on the machine used during the run: other load, i.e. noise. */
  other_cpu_s: number | null;
  /** The same as average busy cores. */
  other_cores: number | null;
}

export interface Summary {
  tool: string;
  label: string;
  kind: ContentKind;
  runs: number;
  ok_runs: number;
  wall_s: number | null;
  wall_min_s: number | null;
  wall_max_s: number | null;
  cpu_s: number | null;
  peak_rss_mb: number | null;
  peak_rss_max_mb: number | null;
  peak_anon_mb: number | null;
  mb_per_s: number | null;
  requests: number | null;
  connections: number | null;
  /** Requests open at the origin on average over the run (mean) and at most. */
  in_flight_mean: number | null;
  in_flight_max: number | null;
  reference: string;
  wall_x_ref: number | null;
  cpu_x_ref: number | null;
  concurrency: number | null;
  failures: string[];
}

const nums = (xs: (number | null | undefined)[]) => xs.filter((x): x is number => typeof x === 'number');
const med = (xs: (number | null | undefined)[], digits = 2) => {
  const m = median(nums(xs));
  return m === null ? null : round(m, digits);
};

export function summarise(samples: Sample[], reference: Record<ContentKind, string>): Summary[] {
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = s.concurrency === null ? s.tool : `${s.tool}@${s.concurrency}`;
    const list = groups.get(key) ?? [];
    list.push(s);
    groups.set(key, list);
  }
  const out: Summary[] = [];
  for (const list of groups.values()) {
    const first = list[0]!;
    const ok = list.filter((s) => s.ok && s.verified);
    const wall = med(ok.map((s) => s.wall_s));
    out.push({
      tool: first.tool,
      label: first.label,
      kind: first.kind,
      runs: list.length,
      ok_runs: ok.length,
      wall_s: wall,
      wall_min_s: ok.length ? Math.min(...ok.map((s) => s.wall_s)) : null,
      wall_max_s: ok.length ? Math.max(...ok.map((s) => s.wall_s)) : null,
      cpu_s: med(ok.map((s) => s.cpu_s)),
      peak_rss_mb: med(
        ok.map((s) => s.peak_rss_tree_mb),
        1,
      ),
      peak_rss_max_mb: ok.length ? Math.max(...ok.map((s) => s.peak_rss_tree_mb)) : null,
      peak_anon_mb: med(
        ok.map((s) => s.peak_anon_tree_mb),
        1,
      ),
      mb_per_s: wall ? round(first.bytes / 1e6 / wall, 1) : null,
      requests: med(
        ok.map((s) => s.origin?.requests),
        0,
      ),
      connections: med(
        ok.map((s) => s.origin?.connections),
        0,
      ),
      in_flight_mean: med(
        ok.map((s) => (s.origin && s.wall_s > 0 ? s.origin.request_ms / 1000 / s.wall_s : null)),
        1,
      ),
      in_flight_max: med(
        ok.map((s) => s.origin?.max_in_flight),
        0,
      ),
      reference: reference[first.kind],
      wall_x_ref: null,
      cpu_x_ref: null,
      concurrency: first.concurrency,
      failures: list
        .filter((s) => !(s.ok && s.verified))
        .map(
          (s) =>
            `round ${s.round}: ${s.timed_out ? 'timed out' : s.ok ? s.verify_note : `exit ${s.exit_code}: ${s.stderr_tail.split('\n').at(-1) ?? ''}`}`,
        ),
    });
  }
  for (const s of out) {
    const ref = out.find((r) => r.tool === s.reference && r.concurrency === null);
    if (ref?.wall_s && s.wall_s !== null) s.wall_x_ref = round(s.wall_s / ref.wall_s, 2);
    if (ref?.cpu_s && s.cpu_s !== null) s.cpu_x_ref = round(s.cpu_s / ref.cpu_s, 2);
  }
  return out;
}

const fmt = (n: number | null | undefined, digits = 2) =>
  n === null || n === undefined ? '–' : n.toFixed(digits);
const ratio = (n: number | null) => (n === null ? '–' : `${n.toFixed(2)}×`);

export function mainTable(summaries: Summary[], kind: ContentKind, refLabel: string): string {
  const rows = summaries.filter((s) => s.kind === kind && s.concurrency === null);
  const lines = [
    `| tool | runs ok | wall s (median) | wall min–max | CPU s | peak RSS MB | anon MB | MB/s | requests | in flight mean/max | wall × ${refLabel} | CPU × ${refLabel} |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of rows) {
    const name = s.tool.startsWith('gabe') ? `**${s.label}**` : s.label;
    lines.push(
      `| ${name} | ${s.ok_runs}/${s.runs} | ${fmt(s.wall_s)} | ${fmt(s.wall_min_s)}–${fmt(s.wall_max_s)} | ${fmt(s.cpu_s)} | ${fmt(s.peak_rss_mb, 0)} | ${fmt(s.peak_anon_mb, 0)} | ${fmt(s.mb_per_s, 1)} | ${fmt(s.requests, 0)} | ${fmt(s.in_flight_mean, 1)} / ${fmt(s.in_flight_max, 0)} | ${ratio(s.wall_x_ref)} | ${ratio(s.cpu_x_ref)} |`,
    );
  }
  return lines.join('\n');
}

export function sweepTable(summaries: Summary[]): string {
  const rows = summaries
    .filter((s) => s.concurrency !== null)
    .sort((a, b) => a.concurrency! - b.concurrency!);
  const lines = [
    '| gabe download -n | runs ok | wall s (median) | CPU s | peak RSS MB | anon MB | MB/s | connections | in flight mean/max |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of rows) {
    lines.push(
      `| ${s.concurrency} | ${s.ok_runs}/${s.runs} | ${fmt(s.wall_s)} | ${fmt(s.cpu_s)} | ${fmt(s.peak_rss_mb, 0)} | ${fmt(s.peak_anon_mb, 0)} | ${fmt(s.mb_per_s, 1)} | ${fmt(s.connections, 0)} | ${fmt(s.in_flight_mean, 1)} / ${fmt(s.in_flight_max, 0)} |`,
    );
  }
  return lines.join('\n');
}

export interface Target {
  target: string;
  measured: string;
  goal: string;
  status: 'pass' | 'FAIL' | 'n/a';
}

export function targetTable(targets: Target[]): string {
  return [
    '| target | measured | goal | status |',
    '| --- | ---: | ---: | --- |',
    ...targets.map((t) => `| ${t.target} | ${t.measured} | ${t.goal} | ${t.status} |`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------- SVG

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Row {
  label: string;
  wall: number | null;
  cpu: number | null;
  rss: number | null;
  gabe: boolean;
  /** "2.95× yt-dlp -N 16" */
  ratio?: string;
  note?: string;
}

export interface ChartPanel {
  title: string;
  rows: Row[];
}

export function chartPanels(
  summaries: Summary[],
  contentNote: Record<ContentKind, string>,
  refLabels: Record<ContentKind, string>,
): ChartPanel[] {
  const row = (s: Summary): Row => ({
    label: s.concurrency === null ? s.label : `gabe download -n ${s.concurrency}`,
    wall: s.wall_s,
    cpu: s.cpu_s,
    rss: s.peak_rss_mb,
    gabe: s.tool.startsWith('gabe'),
    ...(s.wall_x_ref !== null && s.tool !== s.reference && s.concurrency === null
      ? { ratio: `${s.wall_x_ref.toFixed(2)}× ${refLabels[s.kind]}` }
      : {}),
    ...(s.ok_runs === 0 ? { note: 'failed' } : {}),
  });
  const panels: ChartPanel[] = [];
  for (const kind of ['hls', 'dash', 'mp4'] as const) {
    const rows = summaries.filter((s) => s.kind === kind && s.concurrency === null).map(row);
    if (rows.length) panels.push({ title: contentNote[kind], rows });
  }
  const sweep = summaries
    .filter((s) => s.concurrency !== null)
    .sort((a, b) => a.concurrency! - b.concurrency!)
    .map(row);
  if (sweep.length)
    panels.push({ title: 'Segment concurrency sweep (HLS, gabe download -n N)', rows: sweep });
  return panels;
}

/** A horizontal bar chart: per tool the median wall time (thick bar) and CPU time (thin bar). */
export function renderSvg(title: string, subtitle: string[], panels: ChartPanel[]): string {
  const width = 980;
  const labelW = 200;
  const barW = 500;
  const rowH = 30;
  const parts: string[] = [];
  let y = 28;
  parts.push(`<text x="20" y="${y}" font-size="18" font-weight="bold">${esc(title)}</text>`);
  for (const line of subtitle) {
    y += 18;
    parts.push(`<text x="20" y="${y}" font-size="12" fill="#444">${esc(line)}</text>`);
  }
  y += 12;
  for (const panel of panels) {
    y += 26;
    parts.push(`<text x="20" y="${y}" font-size="14" font-weight="bold">${esc(panel.title)}</text>`);
    y += 8;
    const max = Math.max(1e-9, ...nums(panel.rows.flatMap((r) => [r.wall, r.cpu])));
    for (const r of panel.rows) {
      const top = y + 4;
      parts.push(
        `<text x="${labelW - 10}" y="${top + 14}" font-size="12" text-anchor="end"${r.gabe ? ' font-weight="bold"' : ''}>${esc(r.label)}</text>`,
      );
      const wallW = r.wall === null ? 0 : Math.max(1, (r.wall / max) * barW);
      const cpuW = r.cpu === null ? 0 : Math.max(1, (r.cpu / max) * barW);
      parts.push(
        `<rect x="${labelW}" y="${top + 2}" width="${wallW.toFixed(1)}" height="13" fill="${r.gabe ? '#d1495b' : '#4c78a8'}"/>`,
      );
      parts.push(
        `<rect x="${labelW}" y="${top + 17}" width="${cpuW.toFixed(1)}" height="6" fill="${r.gabe ? '#f2a7b0' : '#a8c3e0'}"/>`,
      );
      const text =
        r.note ??
        [
          r.wall === null ? null : `${r.wall.toFixed(1)} s wall`,
          r.cpu === null ? null : `${r.cpu.toFixed(1)} s CPU`,
          r.rss === null ? null : `${Math.round(r.rss)} MB`,
          r.ratio ? `wall ${r.ratio}` : null,
        ]
          .filter(Boolean)
          .join(' · ');
      parts.push(
        `<text x="${labelW + Math.max(wallW, cpuW) + 8}" y="${top + 14}" font-size="11" fill="#222">${esc(text)}</text>`,
      );
      y += rowH;
    }
  }
  y += 30;
  parts.push(
    `<rect x="20" y="${y - 10}" width="12" height="10" fill="#4c78a8"/><text x="38" y="${y}" font-size="11">median wall time (lower is better)</text>`,
    `<rect x="260" y="${y - 7}" width="12" height="5" fill="#a8c3e0"/><text x="278" y="${y}" font-size="11">CPU time, user + system, children included</text>`,
    `<text x="560" y="${y}" font-size="11">MB = peak RSS of the process tree; red = Gabe</text>`,
  );
  const height = y + 16;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" role="img" aria-labelledby="title">`,
    `<title id="title">${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
