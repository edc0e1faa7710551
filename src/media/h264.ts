/**
 * H.264 in MPEG-TS (Annex B byte stream) to MP4 (length-prefixed NAL units): the NAL unit split, the
 * sequence parameter set fields an MP4 sample entry needs, and the avcC record (pure functions).
 * ITU-T H.264 7.3.2.1.1 (SPS), E.1.1 (VUI), ISO/IEC 14496-15 5.3.3.1 (AVCDecoderConfigurationRecord).
 */

export const NAL_IDR = 5;
export const NAL_SEI = 6;
export const NAL_SPS = 7;
export const NAL_PPS = 8;

/**
 * NAL units of an Annex B access unit as [start, end) byte offsets (flat pairs), without start codes.
 */
export function splitNals(b: Buffer): number[] {
  const out: number[] = [];
  // Buffer#indexOf searches natively: a JS loop over every byte of the video costs several times more.
  let at = b.indexOf(START_CODE);
  while (at >= 0) {
    const start = at + 3;
    const next = b.indexOf(START_CODE, start);
    // A 4-byte start code's first zero is not the NAL's; further zeros (cabac_zero_words) are, as
    // ffmpeg keeps them, so samples come out byte for byte as ffmpeg's remux writes them.
    const end = next < 0 ? b.length : b[next - 1] === 0 && next - 1 >= start ? next - 1 : next;
    if (end > start) out.push(start, end);
    at = next;
  }
  return out;
}

const START_CODE = Buffer.from([0, 0, 1]);

/** The SPS payload without emulation prevention bytes (00 00 03 -> 00 00), 7.4.1. */
function unescapeRbsp(nal: Uint8Array): Uint8Array {
  const out = new Uint8Array(nal.length);
  let o = 0;
  let zeros = 0;
  for (const byte of nal) {
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    zeros = byte === 0 ? zeros + 1 : 0;
    out[o++] = byte;
  }
  return out.subarray(0, o);
}

/** SEI payloadType of a recovery point (D.1.8): decoding may start at this picture. */
const SEI_RECOVERY_POINT = 6;

/**
 * True when an SEI NAL unit (header byte included) holds a recovery point message: ffmpeg's parser
 * makes such a picture a key frame, as an open-GOP I picture has no IDR to mark it (7.3.2.3, D.1).
 * Read in place, emulation prevention bytes skipped as they come (7.4.1): many streams carry an SEI
 * in every access unit (picture timing, captions), so this allocates nothing.
 */
export function hasRecoveryPoint(nal: Uint8Array): boolean {
  const r = sei;
  r.nal = nal;
  r.at = 1;
  r.zeros = 0;
  for (;;) {
    let byte = r.next();
    // rbsp_trailing_bits (0x80) where a message would start: the last one was read.
    if (byte < 0 || (byte === 0x80 && r.at >= nal.length)) return false;
    let type = 0;
    for (; byte === 0xff; byte = r.next()) type += 255;
    if (byte < 0) return false;
    type += byte;
    let size = 0;
    for (byte = r.next(); byte === 0xff; byte = r.next()) size += 255;
    if (byte < 0) return false;
    size += byte;
    if (type === SEI_RECOVERY_POINT) return size > 0 && r.at < nal.length;
    for (let i = 0; i < size; i++) if (r.next() < 0) return false;
  }
}

/** RBSP bytes of a NAL unit read in place, emulation prevention bytes skipped (one, reused). */
class RbspReader {
  nal: Uint8Array = new Uint8Array(0);
  at = 0;
  zeros = 0;
  /** The next RBSP byte, or -1 at the end. */
  next(): number {
    const nal = this.nal;
    if (this.at >= nal.length) return -1;
    let byte = nal[this.at++]!;
    if (this.zeros >= 2 && byte === 3) {
      this.zeros = 0;
      if (this.at >= nal.length) return -1;
      byte = nal[this.at++]!;
    }
    this.zeros = byte === 0 ? this.zeros + 1 : 0;
    return byte;
  }
}

const sei = new RbspReader();

class Bits {
  private pos = 0;
  constructor(private readonly b: Uint8Array) {}
  bit(): number {
    const byte = this.b[this.pos >> 3];
    if (byte === undefined) throw new RangeError('SPS ends early');
    const v = (byte >> (7 - (this.pos & 7))) & 1;
    this.pos++;
    return v;
  }
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      if (++zeros > 31) throw new RangeError('bad Exp-Golomb code in SPS');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}

export interface Sps {
  profile: number;
  compatibility: number;
  level: number;
  width: number;
  height: number;
  chromaFormat: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  /** Sample aspect ratio from the VUI; 1:1 when absent. */
  sarWidth: number;
  sarHeight: number;
}

/** Table E-1: the predefined sample aspect ratios. */
const SAR = [
  [0, 0],
  [1, 1],
  [12, 11],
  [10, 11],
  [16, 11],
  [40, 33],
  [24, 11],
  [20, 11],
  [32, 11],
  [80, 33],
  [18, 11],
  [15, 11],
  [64, 33],
  [160, 99],
  [4, 3],
  [3, 2],
  [2, 1],
] as const;

/** Profiles whose SPS carries chroma format, bit depths and scaling matrices (7.3.2.1.1). */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

function skipScalingList(r: Bits, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Parses a sequence parameter set NAL unit (with its one-byte NAL header). Throws on a malformed one. */
export function parseSps(nal: Uint8Array): Sps {
  const b = unescapeRbsp(nal.subarray(1));
  const r = new Bits(b);
  const profile = r.bits(8);
  const compatibility = r.bits(8);
  const level = r.bits(8);
  r.ue(); // seq_parameter_set_id
  let chroma = 1;
  let bitDepthLuma = 8;
  let bitDepthChroma = 8;
  if (HIGH_PROFILES.has(profile)) {
    chroma = r.ue();
    if (chroma === 3) r.bit(); // separate_colour_plane_flag
    bitDepthLuma = r.ue() + 8;
    bitDepthChroma = r.ue() + 8;
    r.bit(); // qpprime_y_zero_transform_bypass_flag
    if (r.bit()) {
      for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) if (r.bit()) skipScalingList(r, i < 6 ? 16 : 64);
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) r.ue();
  else if (pocType === 1) {
    r.bit();
    r.se();
    r.se();
    const cycle = r.ue();
    for (let i = 0; i < cycle; i++) r.se();
  }
  r.ue(); // max_num_ref_frames
  r.bit(); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = r.ue() + 1;
  const heightUnits = r.ue() + 1;
  const frameMbsOnly = r.bit();
  if (!frameMbsOnly) r.bit(); // mb_adaptive_frame_field_flag
  r.bit(); // direct_8x8_inference_flag
  let crop = [0, 0, 0, 0];
  if (r.bit()) crop = [r.ue(), r.ue(), r.ue(), r.ue()];
  // Table 6-1 and 7.4.2.1.1: the cropping unit depends on the chroma subsampling.
  const subWidth = chroma === 1 || chroma === 2 ? 2 : 1;
  const subHeight = chroma === 1 ? 2 : 1;
  const cropX = chroma === 0 ? 1 : subWidth;
  const cropY = (chroma === 0 ? 1 : subHeight) * (2 - frameMbsOnly);
  const width = widthMbs * 16 - cropX * (crop[0]! + crop[1]!);
  const height = (2 - frameMbsOnly) * heightUnits * 16 - cropY * (crop[2]! + crop[3]!);
  let sarWidth = 1;
  let sarHeight = 1;
  try {
    if (r.bit() && r.bit()) {
      // vui_parameters_present_flag, aspect_ratio_info_present_flag
      const idc = r.bits(8);
      if (idc === 255) {
        sarWidth = r.bits(16);
        sarHeight = r.bits(16);
      } else if (idc > 0 && idc < SAR.length) {
        [sarWidth, sarHeight] = SAR[idc]!;
      }
    }
  } catch {
    // A truncated VUI: the picture size is known, the aspect ratio stays square.
  }
  if (sarWidth === 0 || sarHeight === 0) sarWidth = sarHeight = 1;
  if (width <= 0 || height <= 0) throw new RangeError('SPS gives no picture size');
  return {
    profile,
    compatibility,
    level,
    width,
    height,
    chromaFormat: chroma,
    bitDepthLuma,
    bitDepthChroma,
    sarWidth,
    sarHeight,
  };
}

/**
 * The AVCDecoderConfigurationRecord for one SPS and its PPSs, with 4-byte NAL lengths; beyond the
 * Baseline, Main and Extended profiles with the chroma format and bit depths, as ffmpeg writes it.
 */
export function avcConfig(sps: Uint8Array, pps: readonly Uint8Array[], info: Sps): Buffer {
  const parts: Buffer[] = [
    Buffer.from([1, sps[1]!, sps[2]!, sps[3]!, 0xfc | 3, 0xe0 | 1]),
    u16(sps.length),
    Buffer.from(sps),
    Buffer.from([pps.length]),
  ];
  for (const p of pps) parts.push(u16(p.length), Buffer.from(p));
  if (info.profile !== 66 && info.profile !== 77 && info.profile !== 88) {
    parts.push(
      Buffer.from([
        0xfc | info.chromaFormat,
        0xf8 | (info.bitDepthLuma - 8),
        0xf8 | (info.bitDepthChroma - 8),
        0, // numOfSequenceParameterSetExt
      ]),
    );
  }
  return Buffer.concat(parts);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
