/**
 * The `gabe info --json` shape: a public contract, so snake_case names are never renamed (fields may
 * be added). Missing values are null, not absent; `resolved_uri` appears on every URI-bearing object
 * when the playlist's URL was known, and is null when there is no URI or it could not be resolved.
 */
import { detectDrm, identityKey } from './keys.js';
import type {
  ByteRange,
  InitSection,
  Key,
  MasterPlaylist,
  MediaPlaylist,
  Playlist,
  Rendition,
  Variant,
} from './model.js';
import { formatResolution } from './selection.js';

export { formatInfoTable } from './table.js';

type Resolved = { resolved_uri?: string | null };

export interface VariantJson extends Resolved {
  uri: string;
  bandwidth: number | null;
  average_bandwidth: number | null;
  resolution: string | null;
  codecs: string | null;
  frame_rate: number | null;
  audio: string | null;
  video: string | null;
  subtitles: string | null;
  closed_captions: string | null;
}

export interface RenditionJson extends Resolved {
  type: string;
  group_id: string;
  name: string;
  language: string | null;
  uri: string | null;
  default: boolean;
  autoselect: boolean;
  forced: boolean;
  characteristics: string | null;
  channels: string | null;
}

export interface MasterInfoJson {
  kind: 'master';
  version: number | null;
  variants: VariantJson[];
  iframe_variants: VariantJson[];
  renditions: RenditionJson[];
  /** DRM systems named by EXT-X-SESSION-KEY, or null. */
  drm: string | null;
}

export interface KeyJson extends Resolved {
  method: string;
  uri: string | null;
  iv: string | null;
}

export interface FullKeyJson extends KeyJson {
  keyformat: string;
  keyformatversions: string | null;
  keyid: string | null;
}

export interface MapJson extends Resolved {
  uri: string;
  byterange: ByteRange | null;
  keys: FullKeyJson[];
}

export interface SegmentJson extends Resolved {
  uri: string;
  duration: number | null;
  msn: number;
  byterange: ByteRange | null;
  discontinuity: boolean;
  discontinuity_sequence: number;
  /** The identity (clear-key) key in effect, else the first key, else null (clear). */
  key: KeyJson | null;
  /** Every key in effect, all KEYFORMATs. */
  keys: FullKeyJson[];
  map: MapJson | null;
  title: string | null;
  pdt: string | null;
  gap: boolean;
}

export interface MediaInfoJson {
  kind: 'media';
  version: number | null;
  target_duration: number | null;
  media_sequence: number;
  discontinuity_sequence: number;
  skipped_segments: number;
  endlist: boolean;
  playlist_type: 'VOD' | 'EVENT' | null;
  i_frames_only: boolean;
  segment_count: number;
  /** Sum of EXTINF durations, or null when a segment's duration is unknown. */
  total_duration: number | null;
  discontinuity_count: number;
  drm: string | null;
  segments: SegmentJson[];
}

export type InfoJson = MasterInfoJson | MediaInfoJson;

function resolved(o: { resolvedUri?: string }, baseKnown: boolean): Resolved {
  return baseKnown ? { resolved_uri: o.resolvedUri ?? null } : {};
}

function variantJson(v: Variant, baseKnown: boolean): VariantJson {
  return {
    uri: v.uri,
    ...resolved(v, baseKnown),
    bandwidth: v.bandwidth,
    average_bandwidth: v.averageBandwidth,
    resolution: formatResolution(v),
    codecs: v.codecs,
    frame_rate: v.frameRate,
    audio: v.audio,
    video: v.video,
    subtitles: v.subtitles,
    closed_captions: v.closedCaptions,
  };
}

function renditionJson(r: Rendition, baseKnown: boolean): RenditionJson {
  return {
    type: r.type,
    group_id: r.groupId,
    name: r.name,
    language: r.language,
    uri: r.uri,
    ...resolved(r, baseKnown),
    default: r.default,
    autoselect: r.autoselect,
    forced: r.forced,
    characteristics: r.characteristics,
    channels: r.channels,
  };
}

function keyJson(k: Key, baseKnown: boolean): KeyJson {
  return { method: k.method, uri: k.uri, ...resolved(k, baseKnown), iv: k.iv };
}

function fullKeyJson(k: Key, baseKnown: boolean): FullKeyJson {
  return {
    ...keyJson(k, baseKnown),
    keyformat: k.keyformat,
    keyformatversions: k.keyformatversions,
    keyid: k.keyid,
  };
}

function mapJson(m: InitSection, baseKnown: boolean): MapJson {
  return {
    uri: m.uri,
    ...resolved(m, baseKnown),
    byterange: m.byterange,
    keys: m.keys.map((k) => fullKeyJson(k, baseKnown)),
  };
}

function masterJson(p: MasterPlaylist, baseKnown: boolean): MasterInfoJson {
  return {
    kind: 'master',
    version: p.version,
    variants: p.variants.map((v) => variantJson(v, baseKnown)),
    iframe_variants: p.iframeVariants.map((v) => variantJson(v, baseKnown)),
    renditions: p.renditions.map((r) => renditionJson(r, baseKnown)),
    drm: detectDrm(p),
  };
}

/** The exact decimal sum, without float noise such as 161.41670000000002. */
export function totalDuration(p: MediaPlaylist): number | null {
  let sum = 0;
  for (const s of p.segments) {
    if (s.duration === null) return null;
    sum += s.duration;
  }
  return Number(sum.toFixed(9));
}

function mediaJson(p: MediaPlaylist, baseKnown: boolean): MediaInfoJson {
  return {
    kind: 'media',
    version: p.version,
    target_duration: p.targetDuration,
    media_sequence: p.mediaSequence,
    discontinuity_sequence: p.discontinuitySequence,
    skipped_segments: p.skippedSegments,
    endlist: p.endlist,
    playlist_type: p.playlistType,
    i_frames_only: p.iFramesOnly,
    segment_count: p.segments.length,
    total_duration: totalDuration(p),
    discontinuity_count: p.segments.filter((s) => s.discontinuity).length,
    drm: detectDrm(p),
    segments: p.segments.map((s) => {
      const key = identityKey(s.keys) ?? s.keys[0];
      return {
        uri: s.uri,
        ...resolved(s, baseKnown),
        duration: s.duration,
        msn: s.msn,
        byterange: s.byterange,
        discontinuity: s.discontinuity,
        discontinuity_sequence: s.discontinuitySequence,
        key: key === undefined ? null : keyJson(key, baseKnown),
        keys: s.keys.map((k) => fullKeyJson(k, baseKnown)),
        map: s.map === null ? null : mapJson(s.map, baseKnown),
        title: s.title ?? null,
        pdt: s.pdt ?? null,
        gap: s.gap,
      };
    }),
  };
}

export function toInfoJson(playlist: Playlist, baseKnown: boolean): InfoJson {
  return playlist.kind === 'master' ? masterJson(playlist, baseKnown) : mediaJson(playlist, baseKnown);
}
