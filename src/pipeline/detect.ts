import type { JobType } from '../jobs/types.js';
import type { HttpClient } from '../net/client.js';
import { isMpd } from '../playlist/dash/mpd-parser.js';

/**
 * A manifest (HLS or MPEG-DASH, both taken by the manifest downloader) or a plain file? The URL's
 * extension decides when it is clear; otherwise the response does: an mpegurl or dash+xml content
 * type, or a body starting with #EXTM3U or an <MPD> root (many CDNs serve manifests from
 * extension-less URLs or as text/plain).
 */
export async function detectKind(http: HttpClient, url: string, signal?: AbortSignal): Promise<JobType> {
  const pathname = new URL(url).pathname.toLowerCase();
  if (/\.(m3u8?|mpd)$/.test(pathname)) return 'hls';
  if (/\.(mp4|m4v|mov|m4a)$/.test(pathname)) return 'mp4';
  const res = await http.get(url, { signal, range: { start: 0, end: 1023 } });
  const type = String(res.headers['content-type'] ?? '').toLowerCase();
  let head = '';
  for await (const chunk of res.body) {
    head += (chunk as Buffer).toString('latin1');
    if (head.length >= 1024) break;
  }
  res.body.destroy();
  head = head.replace(/^\uFEFF|^\xEF\xBB\xBF/, '');
  return type.includes('mpegurl') ||
    type.includes('dash+xml') ||
    head.trimStart().startsWith('#EXTM3U') ||
    isMpd(head)
    ? 'hls'
    : 'mp4';
}
