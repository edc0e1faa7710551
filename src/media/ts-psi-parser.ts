/**
 * The program-specific information an MP4 remux of HLS reads from MPEG-TS (ISO/IEC 13818-1 2.4.4):
 * the first program's PMT PID from the PAT, the elementary streams from the PMT, and which of them
 * the in-process remux carries (H.264 and ADTS AAC) or why it cannot. Pure: sections in, facts out.
 */

/** PMT stream_type values (13818-1 Table 2-34, and the HLS sample-encryption spec's). */
export const STREAM_H264 = 0x1b;
export const STREAM_AAC = 0x0f;
/** ID3 timed metadata (HLS): not media; an MP4 remux leaves it out, as ffmpeg's `-map 0:v? -map 0:a?` does. */
const STREAM_METADATA = 0x15;

const VIDEO_TYPES = new Set([0x01, 0x02, 0x10, 0x24, 0xdb]);
const AUDIO_TYPES = new Set([0x03, 0x04, 0x11, 0x81, 0x87, 0xcf]);

const STREAM_NAMES: Record<number, string> = {
  1: 'MPEG-1 video',
  2: 'MPEG-2 video',
  3: 'MP3 audio',
  4: 'MP3 audio',
  6: 'private data (AC-3, DVB subtitles or other)',
  17: 'LATM AAC audio',
  36: 'HEVC video',
  129: 'AC-3 audio',
  135: 'E-AC-3 audio',
  219: 'encrypted H.264 video (SAMPLE-AES)',
  207: 'encrypted AAC audio (SAMPLE-AES)',
};

/** One elementary stream of a PMT. */
export interface PmtStream {
  type: number;
  pid: number;
}

/** A PMT read from one packet: its streams, and a key that tells one program map from another. */
export interface ProgramMap {
  key: string;
  streams: PmtStream[];
}

/** The streams the remux takes from a program map (-1: none), or why it cannot take them. */
export interface StreamChoice {
  videoPid: number;
  audioPid: number;
  unsupported: string | null;
}

/**
 * The program_map_PID of the PAT section at `s` (packet end `end`): the first program's
 * (program_number != 0; 0 is the network PID), or -1.
 */
export function patProgramMapPid(b: Buffer, s: number, end: number): number {
  if (s + 12 > end) return -1;
  const sectionEnd = Math.min(end, s + 3 + (((b[s + 1]! & 0x0f) << 8) | b[s + 2]!) - 4);
  for (let i = s + 8; i + 4 <= sectionEnd; i += 4) {
    const program = (b[i]! << 8) | b[i + 1]!;
    if (program !== 0) return ((b[i + 2]! & 0x1f) << 8) | b[i + 3]!;
  }
  return -1;
}

/**
 * The PMT section at `s` (packet end `end`): null when too short to read, a reason when it goes on
 * past this packet (not read here).
 */
export function readPmt(b: Buffer, s: number, end: number): ProgramMap | string | null {
  if (s + 12 > end) return null;
  const sectionLength = ((b[s + 1]! & 0x0f) << 8) | b[s + 2]!;
  const sectionEnd = s + 3 + sectionLength - 4;
  if (sectionEnd > end) return 'a program map table longer than one packet';
  const programInfo = ((b[s + 10]! & 0x0f) << 8) | b[s + 11]!;
  const found: PmtStream[] = [];
  for (let i = s + 12 + programInfo; i + 5 <= sectionEnd; ) {
    found.push({ type: b[i]!, pid: ((b[i + 1]! & 0x1f) << 8) | b[i + 2]! });
    i += 5 + (((b[i + 3]! & 0x0f) << 8) | b[i + 4]!);
  }
  return { key: found.map((f) => `${f.type}:${f.pid}`).join(','), streams: found };
}

/** The H.264 and AAC streams wanted from a program map, or why the remux cannot carry it. */
export function chooseStreams(
  found: readonly PmtStream[],
  want: { video: boolean; audio: boolean },
): StreamChoice {
  const kindOf = (type: number) =>
    type === STREAM_H264 || VIDEO_TYPES.has(type)
      ? 'video'
      : type === STREAM_AAC || AUDIO_TYPES.has(type)
        ? 'audio'
        : type === STREAM_METADATA
          ? 'metadata'
          : 'unknown';
  for (const f of found) {
    const kind = kindOf(f.type);
    const wanted = (kind === 'video' && want.video) || (kind === 'audio' && want.audio);
    // A stream of a kind that is not wanted (the main track's own audio beside an audio rendition)
    // is dropped whatever its codec; one of unknown kind might be audio (AC-3 as private data).
    if (kind === 'unknown' || (wanted && f.type !== STREAM_H264 && f.type !== STREAM_AAC)) {
      return {
        videoPid: -1,
        audioPid: -1,
        unsupported: `a stream of type 0x${f.type.toString(16)} (${STREAM_NAMES[f.type] ?? 'unknown'})`,
      };
    }
  }
  const video = want.video ? found.filter((f) => f.type === STREAM_H264) : [];
  const audio = want.audio ? found.filter((f) => f.type === STREAM_AAC) : [];
  let unsupported: string | null = null;
  if (video.length > 1 || audio.length > 1) unsupported = 'more than one video or audio stream';
  else if (video.length + audio.length === 0) unsupported = 'no H.264 or AAC stream';
  return { videoPid: video[0]?.pid ?? -1, audioPid: audio[0]?.pid ?? -1, unsupported };
}
