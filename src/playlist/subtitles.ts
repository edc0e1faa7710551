/**
 * Subtitle rendition selection (pure): which EXT-X-MEDIA TYPE=SUBTITLES renditions to fetch with a
 * variant, in the order they should appear in the output file.
 */
import type { MasterPlaylist, Rendition, Variant } from './model.js';
import { languageMatches } from './selection.js';

const primarySubtag = (tag: string | null): string => (tag ?? '').trim().toLowerCase().split('-')[0] ?? '';

/**
 * The subtitle renditions of `variant`'s SUBTITLES group that have a URI (one without a URI cannot be
 * fetched), once per URI. With `languages` (empty means none given), only renditions whose LANGUAGE
 * matches one of them, languages in the order asked; without, all of them, the DEFAULT one's language
 * first, then in playlist order. Within a language (by primary subtag), FORCED=YES renditions (only
 * the foreign-language parts, RFC 8216 4.3.4.1) come after the full ones; `Rendition.forced` says
 * which is which.
 */
export function selectSubtitleRenditions(
  master: MasterPlaylist,
  variant: Variant,
  languages?: readonly string[] | null,
): Rendition[] {
  if (variant.subtitles === null) return [];
  const seen = new Set<string>();
  const group: Rendition[] = [];
  for (const r of master.renditions) {
    if (r.type !== 'SUBTITLES' || r.groupId !== variant.subtitles || r.uri === null) continue;
    const uri = r.resolvedUri ?? r.uri;
    if (seen.has(uri)) continue;
    seen.add(uri);
    group.push(r);
  }
  const wanted = languages?.filter((l) => l.trim() !== '') ?? [];
  const pool =
    wanted.length === 0 ? group : group.filter((r) => wanted.some((w) => languageMatches(r.language, w)));

  // Sort keys, most significant first: the first wanted tag matched (without `languages`, the
  // DEFAULT rendition's language before the others); the language's first appearance, so one
  // language's renditions stay together; full before forced; DEFAULT first. Array.prototype.sort is
  // stable, so playlist order breaks the remaining ties.
  const defaults = pool.filter((r) => r.default).map((r) => primarySubtag(r.language));
  const firstSeen = new Map<string, number>();
  for (const [i, r] of pool.entries()) {
    const lang = primarySubtag(r.language);
    if (!firstSeen.has(lang)) firstSeen.set(lang, i);
  }
  const key = (r: Rendition): number[] => {
    const lang = primarySubtag(r.language);
    const asked =
      wanted.length > 0
        ? wanted.findIndex((w) => languageMatches(r.language, w))
        : Number(!defaults.includes(lang));
    return [asked, firstSeen.get(lang) ?? 0, Number(r.forced), Number(!r.default)];
  };
  const keys = new Map(pool.map((r) => [r, key(r)]));
  return [...pool].sort((a, b) => {
    const ka = keys.get(a)!;
    const kb = keys.get(b)!;
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
    return 0;
  });
}
