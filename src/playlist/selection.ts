/**
 * Variant and audio rendition selection (pure). Resolution preferences come from users (API, CLI,
 * config), so their grammar is one exported pattern that the JSON schema and the parser both use.
 */
import { iso639_2 } from '../media/language.js';
import { GabeError } from '../service/errors.js';
import type { MasterPlaylist, Rendition, Resolution, Variant } from './model.js';

/** `best`, `worst`, `720p` (height) or `1280x720` (width x height); lower case, no spaces. */
export const RESOLUTION_PREFERENCE_PATTERN =
  '^(?:best|worst|[1-9][0-9]{0,4}p|[1-9][0-9]{0,4}x[1-9][0-9]{0,4})$';
const PREFERENCE = new RegExp(RESOLUTION_PREFERENCE_PATTERN);

export type ResolutionPreference =
  | { readonly kind: 'size'; readonly width: number; readonly height: number }
  | { readonly kind: 'height'; readonly height: number }
  | { readonly kind: 'best' }
  | { readonly kind: 'worst' };

export function parseResolutionPreference(s: string): ResolutionPreference {
  if (!PREFERENCE.test(s)) {
    throw new GabeError(
      'VALIDATION',
      `invalid resolution "${s}": use WIDTHxHEIGHT (1280x720), HEIGHTp (720p), best or worst`,
      { details: { field: 'resolution', value: s } },
    );
  }
  if (s === 'best' || s === 'worst') return { kind: s };
  if (s.endsWith('p')) return { kind: 'height', height: Number(s.slice(0, -1)) };
  const [w, h] = s.split('x');
  return { kind: 'size', width: Number(w), height: Number(h) };
}

export function formatResolution(v: { readonly resolution: Resolution | null }): string | null {
  return v.resolution === null ? null : `${v.resolution.width}x${v.resolution.height}`;
}

export interface Selection {
  readonly variant: Variant;
  /** Why this variant was chosen, for logs and the job record. */
  readonly reason: string;
}

const AUDIO_CODECS = ['mp4a', 'ac-3', 'ec-3', 'ac-4', 'opus', 'flac', 'alac', 'dts', 'mha1', 'mhm1'];

/** An audio-only variant (RFC 8216 8.6's "main/english-audio.m3u8") is never a video choice. */
export function isAudioOnly(v: Variant): boolean {
  if (v.resolution !== null || v.codecs === null) return false;
  const codecs = v.codecs.split(',').map((c) => c.trim().toLowerCase());
  return codecs.every((c) => AUDIO_CODECS.some((a) => c.startsWith(a)));
}

const area = (v: Variant): number => (v.resolution ? v.resolution.width * v.resolution.height : 0);

/** The first variant that `better` prefers over all others (file order breaks remaining ties). */
function pick(pool: readonly Variant[], better: (a: Variant, b: Variant) => number): Variant {
  let best = pool[0]!;
  for (const v of pool.slice(1)) if (better(v, best) > 0) best = v;
  return best;
}

const byBandwidth = (a: Variant, b: Variant): number => (a.bandwidth ?? -1) - (b.bandwidth ?? -1);

/**
 * Closest match by `metric` (pixel area or height): exact, else the largest not exceeding the
 * target, else the smallest above it; ties go to the highest bandwidth.
 */
function closest(
  pool: readonly Variant[],
  metric: (v: Variant) => number,
  target: number,
  isExact: (v: Variant) => boolean,
): { variant: Variant; how: string } {
  const exact = pool.filter(isExact);
  if (exact.length > 0) return { variant: pick(exact, byBandwidth), how: 'exact match' };
  const below = pool.filter((v) => metric(v) <= target);
  const rank = (dir: 1 | -1) => (a: Variant, b: Variant) =>
    (metric(a) - metric(b)) * dir || byBandwidth(a, b);
  if (below.length > 0) return { variant: pick(below, rank(1)), how: 'closest below' };
  return { variant: pick(pool, rank(-1)), how: 'closest above' };
}

function apply(pool: readonly Variant[], pref: ResolutionPreference, label: string): Selection {
  if (pref.kind === 'best' || pref.kind === 'worst') {
    // Variants without RESOLUTION take part here: bandwidth is the only fair comparison.
    const dir = pref.kind === 'best' ? 1 : -1;
    const unknown = pref.kind === 'best' ? -1 : Number.POSITIVE_INFINITY;
    const variant = pick(
      pool,
      (a, b) => ((a.bandwidth ?? unknown) - (b.bandwidth ?? unknown)) * dir || (area(a) - area(b)) * dir,
    );
    return { variant, reason: `${label}: ${pref.kind === 'best' ? 'highest' : 'lowest'} bandwidth` };
  }
  const sized = pool.filter((v) => v.resolution !== null);
  if (sized.length === 0) {
    return {
      variant: pick(pool, byBandwidth),
      reason: `${label}: no variant declares RESOLUTION, highest bandwidth`,
    };
  }
  const found =
    pref.kind === 'size'
      ? closest(
          sized,
          area,
          pref.width * pref.height,
          (v) => v.resolution?.width === pref.width && v.resolution.height === pref.height,
        )
      : closest(
          sized,
          (v) => v.resolution?.height ?? 0,
          pref.height,
          (v) => v.resolution?.height === pref.height,
        );
  return { variant: found.variant, reason: `${label}: ${found.how} (${formatResolution(found.variant)})` };
}

/**
 * Picks the variant to download: `wanted`, else `defaultResolution`, else the highest bandwidth.
 * I-frame variants are never candidates (the model keeps them apart), nor are audio-only variants
 * while a video variant exists.
 */
export function selectVariant(
  master: MasterPlaylist,
  wanted: string | null | undefined,
  defaultResolution: string | null,
): Selection {
  if (master.variants.length === 0) {
    throw new GabeError('NO_VARIANT', 'the master playlist has no playable variant');
  }
  const video = master.variants.filter((v) => !isAudioOnly(v));
  const pool = video.length > 0 ? video : master.variants;
  const source = wanted ?? defaultResolution;
  if (source === null) return { variant: pick(pool, byBandwidth), reason: 'highest bandwidth' };
  const label = wanted != null ? `resolution ${source}` : `default_resolution ${source}`;
  return apply(pool, parseResolutionPreference(source), label);
}

/**
 * RFC 5646 tags compare case-insensitively; a wanted `en` also takes `en-US` (RFC 4647 3.3.1) and
 * the ISO 639-2 `eng`.
 */
export function languageMatches(tag: string | null, wanted: string): boolean {
  if (tag === null) return false;
  const t = tag.trim().toLowerCase();
  const w = wanted.trim().toLowerCase();
  if (w === '') return false;
  if (t === w || t.startsWith(`${w}-`)) return true;
  // DASH packagers (ffmpeg among them) write ISO 639-2 ("eng", "fre") where HLS has "en": a bare
  // language asked for matches the same language in either form; a region ("pt-BR") stays exact.
  if (w.includes('-')) return false;
  const code = iso639_2(w);
  return code !== 'und' && iso639_2(t) === code;
}

/**
 * The alternative audio to download with `variant`, or null when its audio is muxed in: the group's
 * rendition in `language` if any, else the DEFAULT one, else the first with a URI. A matching or
 * DEFAULT rendition without URI means the muxed audio is that rendition (RFC 8216 4.3.4.2.1), so
 * the answer is then null rather than some other language's track.
 */
export function selectAudioRendition(
  master: MasterPlaylist,
  variant: Variant,
  language?: string,
): Rendition | null {
  const chosen = chosenAudio(master, variant, language);
  return chosen?.uri == null ? null : chosen;
}

/**
 * The URI-less rendition that describes the audio muxed in `variant` (its LANGUAGE is that audio's),
 * when the choice above falls on one; null otherwise.
 */
export function muxedAudioRendition(
  master: MasterPlaylist,
  variant: Variant,
  language?: string,
): Rendition | null {
  const chosen = chosenAudio(master, variant, language);
  return chosen && chosen.uri === null ? chosen : null;
}

function chosenAudio(master: MasterPlaylist, variant: Variant, language?: string): Rendition | null {
  if (variant.audio === null) return null;
  const group = master.renditions.filter((r) => r.type === 'AUDIO' && r.groupId === variant.audio);
  return (
    (language ? group.find((r) => languageMatches(r.language, language)) : undefined) ??
    group.find((r) => r.default) ??
    group.find((r) => r.uri !== null) ??
    null
  );
}
