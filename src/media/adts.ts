/**
 * AAC in MPEG-TS comes as ADTS frames (ISO/IEC 13818-7 6.2, 14496-3 1.A.2); MP4 stores the raw frames
 * and one AudioSpecificConfig (14496-3 1.6.2.1). Pure functions.
 */

export const SAMPLE_RATES = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
] as const;

export interface AdtsHeader {
  /** 7 bytes, or 9 with a CRC. */
  headerLength: number;
  /** The whole frame, header included. */
  frameLength: number;
  /** Audio object type (2 = AAC LC). */
  objectType: number;
  sampleRateIndex: number;
  sampleRate: number;
  channelConfig: number;
  /** Raw data blocks in the frame, 1 in practice; each is 1024 samples. */
  blocks: number;
}

/** The ADTS header at `at`, or null when there is no valid one there (or it is cut off). */
export function parseAdts(b: Uint8Array, at: number): AdtsHeader | null {
  if (at + 7 > b.length) return null;
  if (b[at] !== 0xff || (b[at + 1]! & 0xf6) !== 0xf0) return null; // syncword, layer 0
  const protectionAbsent = b[at + 1]! & 1;
  const objectType = (b[at + 2]! >> 6) + 1;
  const sampleRateIndex = (b[at + 2]! >> 2) & 0x0f;
  const channelConfig = ((b[at + 2]! & 1) << 2) | (b[at + 3]! >> 6);
  const frameLength = ((b[at + 3]! & 3) << 11) | (b[at + 4]! << 3) | (b[at + 5]! >> 5);
  const blocks = (b[at + 6]! & 3) + 1;
  const headerLength = protectionAbsent ? 7 : 9;
  const sampleRate = SAMPLE_RATES[sampleRateIndex];
  if (sampleRate === undefined || frameLength <= headerLength) return null;
  return { headerLength, frameLength, objectType, sampleRateIndex, sampleRate, channelConfig, blocks };
}

/** The two-byte AudioSpecificConfig an ADTS header describes (what ffmpeg's aac_adtstoasc writes). */
export function audioSpecificConfig(h: AdtsHeader): Buffer {
  return Buffer.from([
    (h.objectType << 3) | (h.sampleRateIndex >> 1),
    ((h.sampleRateIndex & 1) << 7) | (h.channelConfig << 3),
  ]);
}

/** Channels of a channel configuration (14496-3 Table 1.19): 7 means 7.1, eight channels. */
export function channelCount(config: number): number {
  return config === 7 ? 8 : config;
}
