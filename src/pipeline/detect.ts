import type { JobType } from '../jobs/types.js';
import type { HttpClient } from '../net/client.js';

/**
 * HLS or a plain file? The URL's extension decides when it is clear; otherwise the response does:
 * an mpegurl content type or a body starting with #EXTM3U is HLS (many CDNs serve playlists from
 * extension-less URLs or as text/plain).
 */
export async function detectKind(http: HttpClient, url: string, signal?: AbortSignal): Promise<JobType> {
  const pathname = new URL(url).pathname.toLowerCase();
  if (/\.m3u8?$/.test(pathname)) return 'hls';
  if (/\.(mp4|m4v|mov|m4a)$/.test(pathname)) return 'mp4';
  const res = await http.get(url, { signal, range: { start: 0, end: 1023 } });
  const type = String(res.headers['content-type'] ?? '').toLowerCase();
  let head = '';
  for await (const chunk of res.body) {
    head += (chunk as Buffer).toString('latin1');
    if (head.length >= 16) break;
  }
  res.body.destroy();
  return type.includes('mpegurl') ||
    head
      .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
      .trimStart()
      .startsWith('#EXTM3U')
    ? 'hls'
    : 'mp4';
}
