/**
 * The typed HLS playlist model (RFC 8216 / draft-pantos-hls-rfc8216bis). Values are kept as written
 * where a later layer may need the original (`uri`, `iv`, `pdt`), and every URI also carries
 * `resolvedUri` when the playlist's final URL was known. Missing values are `null`, never absent,
 * except `resolvedUri`, `title` and `pdt`, which only exist when there is something to say.
 */

/** An absolute byte range: `offset` is always filled in, even when the playlist omitted it. */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

export interface Key {
  /** `AES-128`, `SAMPLE-AES`, `SAMPLE-AES-CTR`, `AES-256`, ... (never `NONE`: NONE clears keys). */
  readonly method: string;
  readonly uri: string | null;
  readonly resolvedUri?: string;
  /** The IV as written (`0x...`), or null: then the IV is the segment's msn (see effectiveIv). */
  readonly iv: string | null;
  /** `identity` when the attribute is absent (RFC 8216 4.3.2.4). */
  readonly keyformat: string;
  readonly keyformatversions: string | null;
  readonly keyid: string | null;
}

/** EXT-X-MAP: the Media Initialization Section in effect for a segment. */
export interface InitSection {
  readonly uri: string;
  readonly resolvedUri?: string;
  readonly byterange: ByteRange | null;
  /** Keys in effect at the EXT-X-MAP tag; these can differ from the segment's own keys. */
  readonly keys: readonly Key[];
}

export interface Segment {
  readonly uri: string;
  readonly resolvedUri?: string;
  /** EXTINF seconds; null when the URI had no EXTINF or its duration was negative/not a number. */
  readonly duration: number | null;
  readonly title?: string;
  /** Media sequence number: EXT-X-MEDIA-SEQUENCE + skipped segments + index. */
  readonly msn: number;
  readonly byterange: ByteRange | null;
  readonly discontinuity: boolean;
  readonly discontinuitySequence: number;
  /** Keys in effect (several KEYFORMATs can apply at once); empty means clear. */
  readonly keys: readonly Key[];
  readonly map: InitSection | null;
  /** EXT-X-GAP: the segment is missing at the origin and must not be fetched. */
  readonly gap: boolean;
  /** Raw EXT-X-PROGRAM-DATE-TIME text applied to this segment. */
  readonly pdt?: string;
}

export type PlaylistType = 'VOD' | 'EVENT';

export interface MediaPlaylist {
  readonly kind: 'media';
  /** The URL the playlist was resolved against (the final URL after redirects), if known. */
  readonly baseUrl?: string;
  readonly version: number | null;
  readonly targetDuration: number | null;
  readonly mediaSequence: number;
  readonly discontinuitySequence: number;
  /** EXT-X-SKIP SKIPPED-SEGMENTS of a delta update (0 when absent). */
  readonly skippedSegments: number;
  readonly endlist: boolean;
  readonly playlistType: PlaylistType | null;
  readonly iFramesOnly: boolean;
  readonly independentSegments: boolean;
  readonly segments: readonly Segment[];
}

export interface Resolution {
  readonly width: number;
  readonly height: number;
}

/** EXT-X-STREAM-INF (playable) or EXT-X-I-FRAME-STREAM-INF (trick play, never playable). */
export interface Variant {
  readonly uri: string;
  readonly resolvedUri?: string;
  /** Required by the RFC, but null when a lenient parse met a variant without it. */
  readonly bandwidth: number | null;
  readonly averageBandwidth: number | null;
  readonly resolution: Resolution | null;
  /** The raw CODECS attribute (spaces kept). */
  readonly codecs: string | null;
  readonly frameRate: number | null;
  readonly audio: string | null;
  readonly video: string | null;
  readonly subtitles: string | null;
  /** A group id, or the enumerated value `NONE`. */
  readonly closedCaptions: string | null;
  readonly iFrameOnly: boolean;
  /** Every attribute as written (after variable substitution), for fields not modelled above. */
  readonly attributes: Readonly<Record<string, string>>;
}

export type RenditionType = 'AUDIO' | 'VIDEO' | 'SUBTITLES' | 'CLOSED-CAPTIONS';

/** EXT-X-MEDIA. */
export interface Rendition {
  readonly type: string;
  readonly groupId: string;
  readonly name: string;
  readonly language: string | null;
  readonly assocLanguage: string | null;
  /** Null when the media is carried in the variant stream itself. */
  readonly uri: string | null;
  readonly resolvedUri?: string;
  readonly default: boolean;
  readonly autoselect: boolean;
  readonly forced: boolean;
  readonly characteristics: string | null;
  readonly channels: string | null;
  readonly instreamId: string | null;
  readonly attributes: Readonly<Record<string, string>>;
}

export interface MasterPlaylist {
  readonly kind: 'master';
  readonly baseUrl?: string;
  readonly version: number | null;
  readonly independentSegments: boolean;
  /** Playable variants, in file order. */
  readonly variants: readonly Variant[];
  /** I-frame variants, kept apart because they are never playable. */
  readonly iframeVariants: readonly Variant[];
  /** Every EXT-X-MEDIA in file order, including groups no variant references. */
  readonly renditions: readonly Rendition[];
  /** EXT-X-SESSION-KEY: lets DRM be detected before any media playlist is fetched. */
  readonly sessionKeys: readonly Key[];
  /** EXT-X-DEFINE variables after substitution; media playlists may IMPORT them. */
  readonly defines: Readonly<Record<string, string>>;
}

export type Playlist = MasterPlaylist | MediaPlaylist;
