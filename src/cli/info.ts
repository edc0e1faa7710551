import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { HttpClient } from '../net/client.js';
import { isMpd, parseMpd } from '../playlist/dash/mpd-parser.js';
import { mpdDrm, mpdToMaster } from '../playlist/dash/mpd-to-hls.js';
import { formatInfoTable, toInfoJson } from '../playlist/info.js';
import type { Playlist } from '../playlist/model.js';
import { parsePlaylist } from '../playlist/parser.js';

export interface InfoOptions {
  json?: boolean;
  baseUrl?: string;
  proxy?: string | null;
  timeoutMs: number;
}

/** What an MPD says that its master view does not: liveness, duration, DRM. */
export interface DashFacts {
  live: boolean;
  duration_seconds: number | null;
  drm: string | null;
}

export interface Loaded {
  playlist: Playlist;
  baseKnown: boolean;
  format: 'hls' | 'dash';
  dash: DashFacts | null;
}

/** An MPD is shown as the master Gabe downloads it through (playlist/dash/mpd-to-hls.ts). */
function fromText(text: string, base: string | undefined, baseKnown: boolean): Loaded {
  if (!isMpd(text)) return { playlist: parsePlaylist(text, base), baseKnown, format: 'hls', dash: null };
  // Relative BaseURLs need some base; a file without --base-url resolves against a placeholder.
  const mpd = parseMpd(text, base ?? 'file:///');
  const live = mpd.type === 'dynamic';
  const dash = { live, duration_seconds: live ? null : mpd.mediaPresentationDuration, drm: mpdDrm(mpd) };
  return { playlist: mpdToMaster(mpd), baseKnown, format: 'dash', dash };
}

/** Reads a playlist from a file or a URL; URIs resolve against --base-url, else the URL it came from. */
export async function loadForInfo(source: string, o: InfoOptions): Promise<Loaded> {
  if (existsSync(source)) {
    const text = await readFile(source, 'utf8');
    return fromText(text, o.baseUrl, o.baseUrl !== undefined);
  }
  // `gabe info` runs for the local user, who may read playlists from their own LAN: no destination guard.
  const http = new HttpClient({ timeoutMs: o.timeoutMs, proxy: o.proxy, allowPrivateNetworks: true });
  try {
    const { data, res } = await http.getBuffer(source, { maxBytes: 16 * 1024 * 1024 });
    return fromText(data.toString('utf8'), o.baseUrl ?? res.url, true);
  } finally {
    await http.destroy();
  }
}

export async function info(source: string, o: InfoOptions): Promise<string> {
  const { playlist, baseKnown, format, dash } = await loadForInfo(source, o);
  if (o.json) return JSON.stringify({ format, ...toInfoJson(playlist, baseKnown), ...dash }, null, 2);
  const table = formatInfoTable(playlist);
  if (!dash) return table;
  const duration = dash.duration_seconds === null ? '' : `, ${dash.duration_seconds} s`;
  const drm = dash.drm ? `, DRM-protected (${dash.drm})` : '';
  return `MPEG-DASH MPD (${dash.live ? 'live' : 'static'}${duration}${drm})\n${table}`;
}
