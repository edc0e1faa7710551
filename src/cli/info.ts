import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { HttpClient } from '../net/client.js';
import { formatInfoTable, toInfoJson } from '../playlist/info.js';
import type { Playlist } from '../playlist/model.js';
import { parsePlaylist } from '../playlist/parser.js';

export interface InfoOptions {
  json?: boolean;
  baseUrl?: string;
  proxy?: string | null;
  timeoutMs: number;
}

/** Reads a playlist from a file or a URL; URIs resolve against --base-url, else the URL it came from. */
export async function loadForInfo(
  source: string,
  o: InfoOptions,
): Promise<{ playlist: Playlist; baseKnown: boolean }> {
  if (existsSync(source)) {
    const text = await readFile(source, 'utf8');
    return { playlist: parsePlaylist(text, o.baseUrl), baseKnown: o.baseUrl !== undefined };
  }
  // `gabe info` runs for the local user, who may read playlists from their own LAN: no destination guard.
  const http = new HttpClient({ timeoutMs: o.timeoutMs, proxy: o.proxy, allowPrivateNetworks: true });
  try {
    const { data, res } = await http.getBuffer(source, { maxBytes: 16 * 1024 * 1024 });
    return { playlist: parsePlaylist(data.toString('utf8'), o.baseUrl ?? res.url), baseKnown: true };
  } finally {
    await http.destroy();
  }
}

export async function info(source: string, o: InfoOptions): Promise<string> {
  const { playlist, baseKnown } = await loadForInfo(source, o);
  return o.json ? JSON.stringify(toInfoJson(playlist, baseKnown), null, 2) : formatInfoTable(playlist);
}
