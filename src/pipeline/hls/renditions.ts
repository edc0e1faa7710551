/**
 * From the job's URL to the media playlists to download: the variant (by resolution), its audio (by
 * language), its subtitles (by language), through at most a few master hops; and reloading them when
 * signed URLs expire or a live playlist grows.
 */

import type { HttpClient } from '../../net/client.js';
import { type RetryPolicy, withRetry } from '../../net/retry.js';
import { isMpd } from '../../playlist/dash/mpd-parser.js';
import { selectionOf, withoutFragment } from '../../playlist/dash/mpd-selection.js';
import type { MasterPlaylist, MediaPlaylist, Playlist, Rendition, Variant } from '../../playlist/model.js';
import { assertDownloadable, detectDrm, parsePlaylist } from '../../playlist/parser.js';
import {
  formatResolution,
  muxedAudioRendition,
  selectAudioRendition,
  selectVariant,
} from '../../playlist/selection.js';
import { selectSubtitleRenditions } from '../../playlist/subtitles.js';
import { GabeError } from '../../service/errors.js';
import type { DownloadContext } from '../context.js';
import { dashPlaylist } from './dash-source.js';
import { urlOf } from './track-plan.js';
import { isExpiredUrlError } from './url-refresh.js';

/** Playlists larger than this are refused before parsing (a 100,000-segment playlist is ~10 MB). */
const MAX_PLAYLIST_BYTES = 16 * 1024 * 1024;
/** Masters that point at masters: real CDNs do one hop; loops must end. */
const MAX_PLAYLIST_HOPS = 3;

export interface PlaylistSource {
  http: HttpClient;
  ctx: DownloadContext;
  policy: RetryPolicy;
  /**
   * MPDs this selection has read, by URL (as asked and after redirects): one MPD is the master and
   * every track's media playlist, and one copy of it serves them all. Reloads (live, expired URLs)
   * go without, to the origin.
   */
  mpds?: Map<string, { text: string; url: string }>;
}

/** An HLS playlist, or an MPD (or an MPD selection URL) seen as one (dash-source.ts). */
export async function loadPlaylist(src: PlaylistSource, url: string): Promise<Playlist> {
  const { ctx } = src;
  const onRetry = (err: Error, attempt: number, delayMs: number) => {
    ctx.onRetry?.();
    ctx.log.warn({ url, err: err.message, attempt, delayMs }, 'playlist fetch failed; retrying');
  };
  const selection = selectionOf(url);
  const wire = selection ? withoutFragment(url) : url;
  const got =
    src.mpds?.get(wire) ??
    (await withRetry(
      async () => {
        const opts = { signal: ctx.signal, maxBytes: MAX_PLAYLIST_BYTES, bypassLimit: true };
        const { data, res } = await src.http.getBuffer(wire, opts);
        return { text: data.toString('utf8'), url: res.url };
      },
      src.policy,
      { signal: ctx.signal, onRetry },
    ));
  if (selection || isMpd(got.text)) {
    src.mpds?.set(wire, got).set(got.url, got);
    const fetch = { http: src.http, policy: src.policy, signal: ctx.signal, onRetry };
    return dashPlaylist(fetch, got.text, got.url, url);
  }
  // The final URL after redirects is the base for relative URIs (RFC 8216 4.1 via RFC 3986 5.1.3).
  return parsePlaylist(got.text, got.url);
}

export async function loadMedia(src: PlaylistSource, url: string, what: string): Promise<MediaPlaylist> {
  const playlist = await loadPlaylist(src, url);
  if (playlist.kind !== 'media') throw new GabeError('NOT_A_PLAYLIST', `the ${what} is not a media playlist`);
  return playlist;
}

/** One media playlist to download, with the URL it was requested from (before redirects) for reloads. */
export interface Track {
  media: MediaPlaylist;
  url: string;
}

export interface SubtitleTrack extends Track {
  rendition: Rendition;
}

export interface Selected {
  /** The variant's media playlist (video, possibly with muxed audio). */
  main: Track;
  variant: Variant | null;
  /** A separate audio rendition, when the variant's audio is not muxed in. */
  audio: (Track & { rendition: Rendition }) | null;
  /** Subtitle renditions of the variant (fetched on their own, small). */
  subtitles: SubtitleTrack[];
  /** LANGUAGE of the chosen audio rendition without a URI: it describes the audio muxed in the variant. */
  muxedAudioLanguage?: string | null;
}

/** A media playlist without EXT-X-ENDLIST that does not promise to be VOD (RFC 8216 4.3.3.5). */
export function isLive(media: MediaPlaylist): boolean {
  return !media.endlist && media.playlistType !== 'VOD';
}

/** Resolves the job URL to the media playlists to download. */
export async function selectStreams(source: PlaylistSource): Promise<Selected> {
  const src = { ...source, mpds: new Map() };
  const { ctx } = src;
  const { request } = ctx.job;
  let playlist = await loadPlaylist(src, request.url);
  let master: MasterPlaylist | null = null;
  let variant: Variant | null = null;
  let mainUrl = request.url;
  for (let hop = 0; playlist.kind === 'master'; hop++) {
    if (hop >= MAX_PLAYLIST_HOPS) {
      throw new GabeError(
        'NOT_A_PLAYLIST',
        `the master playlist leads to more than ${MAX_PLAYLIST_HOPS} masters in a row`,
      );
    }
    const drm = detectDrm(playlist);
    if (drm) throw new GabeError('DRM', `the stream is DRM-protected (${drm}); Gabe cannot download it`);
    master = playlist;
    const selection = selectVariant(master, request.resolution, ctx.config.default_resolution);
    variant = selection.variant;
    ctx.log.info(
      { resolution: formatResolution(variant), bandwidth: variant.bandwidth, reason: selection.reason },
      'variant selected',
    );
    mainUrl = urlOf(variant, master.baseUrl, 'variant');
    playlist = await loadPlaylist(src, mainUrl);
  }
  assertDownloadable(playlist);
  const selected: Selected = { main: { media: playlist, url: mainUrl }, variant, audio: null, subtitles: [] };
  if (!master || !variant) return selected;

  const wanted = request.audio_language ?? undefined;
  const rendition = selectAudioRendition(master, variant, wanted);
  if (wanted && rendition && !rendition.language?.toLowerCase().startsWith(wanted.toLowerCase())) {
    ctx.log.warn(
      { wanted, using: rendition.language },
      'no audio rendition in the requested language; using the default one',
    );
  }
  if (rendition?.uri) {
    const url = urlOf(
      { uri: rendition.uri, resolvedUri: rendition.resolvedUri },
      master.baseUrl,
      'rendition',
    );
    const media = await loadMedia(src, url, 'audio rendition');
    assertDownloadable(media);
    selected.audio = { media, url, rendition };
    ctx.log.info({ name: rendition.name, language: rendition.language }, 'separate audio selected');
  } else {
    selected.muxedAudioLanguage = muxedAudioRendition(master, variant, wanted)?.language ?? null;
  }

  if (request.subtitles !== false && !request.audio_only) {
    for (const r of selectSubtitleRenditions(master, variant, request.subtitle_languages)) {
      const url = urlOf({ uri: r.uri!, resolvedUri: r.resolvedUri }, master.baseUrl, 'rendition');
      try {
        selected.subtitles.push({
          media: await loadMedia(src, url, 'subtitle rendition'),
          url,
          rendition: r,
        });
      } catch (err) {
        // Subtitles are extras: one that cannot be had does not cost the video.
        ctx.log.warn({ language: r.language, err: (err as Error).message }, 'subtitle rendition skipped');
      }
    }
  }
  return selected;
}

/**
 * A fresh copy of a track's media playlist: signed URLs expire mid-download, and a fresh copy carries
 * fresh segment and key URLs. When the media playlist's own URL has expired too, the whole selection
 * runs again from the job's URL (the master), which picks the same variant from the same ladder.
 */
export async function reloadTrack(
  src: PlaylistSource,
  selected: Selected,
  which: 'main' | 'audio',
): Promise<MediaPlaylist> {
  const url = which === 'main' ? selected.main.url : selected.audio?.url;
  if (url) {
    try {
      return await loadMedia(src, url, `${which} playlist`);
    } catch (err) {
      if (!isExpiredUrlError(err)) throw err;
    }
  }
  const fresh = await selectStreams(src);
  selected.main = fresh.main;
  selected.audio = fresh.audio;
  const track = which === 'main' ? fresh.main : fresh.audio;
  if (!track) throw new GabeError('NOT_A_PLAYLIST', `the reloaded playlist no longer has the ${which} track`);
  return track.media;
}
