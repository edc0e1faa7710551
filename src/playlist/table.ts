/**
 * Human view of a playlist for `gabe info` (the yt-dlp -F habit): a table of variants and renditions
 * for a master playlist, a short summary for a media playlist. Not a contract; the JSON is.
 */
import { detectDrm } from './keys.js';
import type { MasterPlaylist, MediaPlaylist, Playlist, Variant } from './model.js';
import { formatResolution, isAudioOnly } from './selection.js';

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  // A loop, not Math.max(...rows): spreading 100,000+ rows as arguments overflows the stack.
  const widths = header.map((h) => h.length);
  for (const r of rows) {
    for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i] ?? 0, (r[i] ?? '').length);
  }
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function kbps(bps: number | null): string {
  return bps === null ? '-' : `${Math.round(bps / 1000)}k`;
}

function variantRows(variants: readonly Variant[]): string[][] {
  return variants.map((v, i) => [
    String(i),
    formatResolution(v) ?? (isAudioOnly(v) ? 'audio only' : '-'),
    v.frameRate === null ? '-' : String(v.frameRate),
    kbps(v.bandwidth),
    kbps(v.averageBandwidth),
    v.codecs ?? '-',
    v.audio ?? '-',
    v.subtitles ?? '-',
    v.uri,
  ]);
}

function formatMaster(p: MasterPlaylist): string {
  const out: string[] = [];
  const drm = detectDrm(p);
  if (drm !== null) out.push(`DRM (session keys): ${drm}`, '');
  out.push(`Variants: ${p.variants.length}`);
  if (p.variants.length > 0) {
    const header = ['ID', 'RESOLUTION', 'FPS', 'BANDWIDTH', 'AVG', 'CODECS', 'AUDIO', 'SUBS', 'URI'];
    out.push(table(header, variantRows(p.variants)));
  }
  if (p.renditions.length > 0) {
    out.push('', `Renditions: ${p.renditions.length}`);
    const rows = p.renditions.map((r) => [
      r.type,
      r.groupId,
      r.language ?? '-',
      r.name,
      [r.default ? 'default' : '', r.autoselect ? 'autoselect' : '', r.forced ? 'forced' : '']
        .filter(Boolean)
        .join(',') || '-',
      r.uri ?? '(in variant)',
    ]);
    out.push(table(['TYPE', 'GROUP', 'LANGUAGE', 'NAME', 'FLAGS', 'URI'], rows));
  }
  if (p.iframeVariants.length > 0) {
    out.push('', `I-frame variants: ${p.iframeVariants.length} (trick play, not downloadable)`);
  }
  return out.join('\n');
}

function clock(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = (seconds % 60).toFixed(3).padStart(6, '0');
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${s}`;
}

function formatMedia(p: MediaPlaylist): string {
  const segs = p.segments;
  let total = 0;
  let unknown = 0;
  for (const s of segs) {
    if (s.duration === null) unknown++;
    else total += s.duration;
  }
  const methods = new Set(segs.flatMap((s) => s.keys.map((k) => k.method)));
  const drm = detectDrm(p);
  const state = p.endlist ? 'complete (EXT-X-ENDLIST)' : p.playlistType === 'VOD' ? 'complete (VOD)' : 'live';
  const facts = [
    `Media playlist: ${segs.length} segment${segs.length === 1 ? '' : 's'}, ${clock(total)}${unknown > 0 ? ` (+${unknown} of unknown duration)` : ''}`,
    `Type: ${p.playlistType ?? '-'}, ${state}, target duration ${p.targetDuration ?? '-'} s, first msn ${segs[0]?.msn ?? p.mediaSequence}`,
    `Encryption: ${drm !== null ? `DRM (${drm})` : methods.size > 0 ? [...methods].join(', ') : 'none'}`,
    `Init section (EXT-X-MAP): ${segs.some((s) => s.map !== null) ? 'yes (fMP4)' : 'no'}`,
    `Byte ranges: ${segs.some((s) => s.byterange !== null) ? 'yes' : 'no'}`,
    `Discontinuities: ${segs.filter((s) => s.discontinuity).length}, gaps: ${segs.filter((s) => s.gap).length}`,
  ];
  return facts.join('\n');
}

export function formatInfoTable(playlist: Playlist): string {
  return playlist.kind === 'master' ? formatMaster(playlist) : formatMedia(playlist);
}
