import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from 'typebox';
import { checkUrl, HttpClient } from '../net/client.js';
import { transferLimits } from '../net/deadlines.js';
import { mergeHeaders, requestHeaders } from '../net/headers.js';
import { detectKind } from '../pipeline/detect.js';
import { parseContentRange } from '../pipeline/mp4/range-plan.js';
import type { Mpd } from '../playlist/dash/mpd-model.js';
import { isMpd, parseMpd } from '../playlist/dash/mpd-parser.js';
import { mpdDrm, mpdToMaster } from '../playlist/dash/mpd-to-hls.js';
import { identityKey } from '../playlist/keys.js';
import type { MasterPlaylist, MediaPlaylist, Playlist, Rendition } from '../playlist/model.js';
import { detectDrm, parsePlaylist } from '../playlist/parser.js';
import { formatResolution, isAudioOnly } from '../playlist/selection.js';
import type { Config } from '../service/config.js';
import { GabeError } from '../service/errors.js';
import type { RateLimitHook } from './rate-limit.js';
import { errorResponses, UrlField } from './schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const RenditionInfo = Type.Object({
  name: Type.String(),
  language: Nullable(Type.String()),
  group_id: Type.String(),
  default: Type.Boolean(),
});

export const ProbeResult = Type.Object({
  kind: Type.Union([Type.Literal('master'), Type.Literal('media'), Type.Literal('mp4')]),
  format: Type.Optional(
    Type.Union([Type.Literal('hls'), Type.Literal('dash')], {
      description: 'Manifests: an HLS playlist, or an MPEG-DASH MPD (reported as a master).',
    }),
  ),
  url: Type.String({ description: 'The URL that answered, after redirects.' }),
  live: Type.Boolean(),
  duration_seconds: Nullable(Type.Number()),
  encrypted: Type.Boolean(),
  encryption: Nullable(
    Type.String({ description: 'AES-128, or the DRM system that makes it undownloadable.' }),
  ),
  variants: Type.Array(
    Type.Object({
      id: Type.Integer({ description: 'Position in the master playlist.' }),
      resolution: Nullable(Type.String()),
      bandwidth: Nullable(Type.Number()),
      average_bandwidth: Nullable(Type.Number()),
      codecs: Nullable(Type.String()),
      frame_rate: Nullable(Type.Number()),
      estimated_size_bytes: Nullable(Type.Number({ description: 'Duration × (average) bandwidth.' })),
    }),
  ),
  audio: Type.Array(RenditionInfo),
  subtitles: Type.Array(RenditionInfo),
  mp4: Nullable(
    Type.Object({
      size_bytes: Nullable(Type.Number()),
      content_type: Nullable(Type.String()),
      accepts_ranges: Type.Boolean(),
    }),
  ),
});
export type ProbeResult = Static<typeof ProbeResult>;

const ProbeBody = Type.Object(
  {
    url: UrlField,
    headers: Type.Optional(
      requestHeaders("HTTP headers for the probe's fetches (as a download would send them)."),
    ),
  },
  { additionalProperties: false },
);

const MAX_PLAYLIST_BYTES = 16 * 1024 * 1024;

async function fetchPlaylist(
  http: HttpClient,
  url: string,
): Promise<{ playlist: Playlist; finalUrl: string }> {
  const { data, res } = await http.getBuffer(url, { maxBytes: MAX_PLAYLIST_BYTES });
  return { playlist: parsePlaylist(data.toString('utf8'), res.url), finalUrl: res.url };
}

function renditions(master: MasterPlaylist, type: string) {
  return master.renditions
    .filter((r: Rendition) => r.type === type)
    .map((r) => ({ name: r.name, language: r.language, group_id: r.groupId, default: r.default }));
}

function mediaFacts(media: MediaPlaylist) {
  let encryption: string | null = detectDrm(media);
  let duration = 0;
  for (const s of media.segments) {
    if (!s.gap) duration += s.duration ?? 0;
    const key = identityKey(s.keys);
    if (!encryption && key) encryption = key.method;
  }
  return { live: !media.endlist && media.playlistType !== 'VOD', duration, encryption };
}

/** What a download of this URL would get, without downloading it. */
export async function probe(
  url: string,
  config: Config,
  headers: Record<string, string> | null = null,
): Promise<ProbeResult> {
  checkUrl(url);
  const http = new HttpClient({
    ...transferLimits(config),
    proxy: config.proxy,
    proxyFrom: 'config',
    allowPrivateNetworks: config.allow_private_networks,
    headers: mergeHeaders(config.headers, headers),
    jobUrl: url,
  });
  try {
    const kind = await detectKind(http, url);
    if (kind === 'mp4') return await probeMp4(http, url);
    const { data, res } = await http.getBuffer(url, { maxBytes: MAX_PLAYLIST_BYTES });
    const text = data.toString('utf8');
    if (isMpd(text)) return probeMpd(parseMpd(text, res.url));
    const finalUrl = res.url;
    const playlist = parsePlaylist(text, finalUrl);
    if (playlist.kind === 'media') {
      const facts = mediaFacts(playlist);
      return {
        kind: 'media',
        format: 'hls',
        url: finalUrl,
        live: facts.live,
        duration_seconds: facts.duration,
        encrypted: facts.encryption !== null,
        encryption: facts.encryption,
        variants: [],
        audio: [],
        subtitles: [],
        mp4: null,
      };
    }
    return await probeMaster(http, playlist, finalUrl);
  } finally {
    await http.destroy();
  }
}

/** An MPD, as its master (mpd-to-hls.ts): duration and liveness come from the MPD itself. */
function probeMpd(mpd: Mpd): ProbeResult {
  const duration =
    mpd.mediaPresentationDuration ??
    (mpd.periods.every((p) => p.duration !== null)
      ? mpd.periods.reduce((n, p) => n + (p.duration ?? 0), 0)
      : null);
  const live = mpd.type === 'dynamic';
  const facts = { live, duration: live ? null : duration, encryption: mpdDrm(mpd) };
  return { ...masterResult(mpdToMaster(mpd), mpd.url, facts, null), format: 'dash' };
}

/** One byte asked for: the answer tells the size and whether Range works. */
async function probeMp4(http: HttpClient, url: string): Promise<ProbeResult> {
  const res = await http.get(url, { range: { start: 0, end: 0 } });
  await res.body.dump().catch(() => {});
  const range = res.status === 206 ? parseContentRange(res.headers['content-range']) : null;
  return {
    kind: 'mp4',
    url: res.url,
    live: false,
    duration_seconds: null,
    encrypted: false,
    encryption: null,
    variants: [],
    audio: [],
    subtitles: [],
    mp4: {
      size_bytes: range?.total ?? res.contentLength,
      content_type: res.headers['content-type'] ? String(res.headers['content-type']) : null,
      accepts_ranges: range !== null,
    },
  };
}

async function probeMaster(
  http: HttpClient,
  playlist: MasterPlaylist,
  finalUrl: string,
): Promise<ProbeResult> {
  // Duration and encryption live in the media playlists: read the top variant's, as a download would.
  const candidates = playlist.variants.filter((v) => !isAudioOnly(v));
  const top = [...(candidates.length ? candidates : playlist.variants)].sort(
    (a, b) => (b.bandwidth ?? 0) - (a.bandwidth ?? 0),
  )[0];
  let facts: ReturnType<typeof mediaFacts> | null = null;
  if (top) {
    const media = await fetchPlaylist(http, top.resolvedUri ?? new URL(top.uri, finalUrl).href);
    if (media.playlist.kind === 'media') facts = mediaFacts(media.playlist);
  }
  return { ...masterResult(playlist, finalUrl, facts, detectDrm(playlist)), format: 'hls' };
}

function masterResult(
  playlist: MasterPlaylist,
  finalUrl: string,
  facts: { live: boolean; duration: number | null; encryption: string | null } | null,
  drm: string | null,
): ProbeResult {
  const encryption = drm ?? facts?.encryption ?? null;
  return {
    kind: 'master',
    url: finalUrl,
    live: facts?.live ?? false,
    duration_seconds: facts?.duration ?? null,
    encrypted: encryption !== null,
    encryption,
    variants: playlist.variants.map((v, id) => {
      const bps = v.averageBandwidth ?? v.bandwidth;
      return {
        id,
        resolution: formatResolution(v),
        bandwidth: v.bandwidth,
        average_bandwidth: v.averageBandwidth,
        codecs: v.codecs,
        frame_rate: v.frameRate,
        estimated_size_bytes: bps && facts?.duration ? Math.round((bps / 8) * facts.duration) : null,
      };
    }),
    audio: renditions(playlist, 'AUDIO'),
    subtitles: renditions(playlist, 'SUBTITLES'),
    mp4: null,
  };
}

export const probeRoutes: FastifyPluginAsyncTypebox<{
  config: Config;
  guard: (url: string) => Promise<void>;
  /** The probe budget (undefined: no rate limit). */
  rateLimit?: RateLimitHook;
}> = async (app, { config, guard, rateLimit }) => {
  app.post(
    '/probe',
    {
      ...(rateLimit ? { onRequest: rateLimit } : {}),
      schema: {
        summary: 'Inspect a URL before downloading it',
        description:
          'HLS and MPEG-DASH (an MPD is reported as a master, with format "dash"): playlist kind, variants (resolution, bandwidth, codecs, estimated size), audio and subtitle ' +
          'renditions, encryption, duration, live. MP4: size and whether Range works. Same destination ' +
          'guard and limits as downloads.',
        tags: ['downloads'],
        body: ProbeBody,
        response: { 200: ProbeResult, 400: errorResponses[422], ...errorResponses },
      },
    },
    async (req) => {
      await guard(req.body.url);
      try {
        return await probe(req.body.url, config, req.body.headers);
      } catch (err) {
        if (err instanceof GabeError && err.httpStatus >= 500) {
          // An origin failure is the client's URL's problem, not ours: answer 502 with the reason.
          throw new GabeError(err.kind, err.message, { httpStatus: 502, cause: err });
        }
        throw err;
      }
    },
  );
};
