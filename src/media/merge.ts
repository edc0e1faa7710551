/**
 * ffmpeg arguments for turning downloaded tracks into one MP4 (pure: tested without running ffmpeg).
 * Stream copy only: Gabe never re-encodes, so the output is bit-for-bit the stream's own video.
 */
export interface MergeInput {
  /** The main track (video, or audio for an audio-only stream), MPEG-TS or fragmented MP4. */
  video: string;
  /** A separate audio rendition to use instead of any audio in the main track. */
  audio?: string | null;
  output: string;
  /** ADTS AAC in MPEG-TS needs aac_adtstoasc to become MP4's AudioSpecificConfig. */
  adtsAudio: boolean;
}

export function buildMergeArgs(input: MergeInput): string[] {
  const args = ['-hide_banner', '-nostdin', '-y', '-loglevel', 'error'];
  args.push('-i', input.video);
  if (input.audio) args.push('-i', input.audio);
  // '?' makes a map optional: an audio-only or video-only stream merges without error. Data and ID3
  // timed-metadata streams are left out on purpose: MP4 cannot carry them.
  args.push('-map', '0:v?');
  args.push('-map', input.audio ? '1:a?' : '0:a?');
  args.push('-c', 'copy');
  if (input.adtsAudio) args.push('-bsf:a', 'aac_adtstoasc');
  // moov in front, so the file starts playing in a browser before it has fully loaded.
  args.push('-movflags', '+faststart', '-f', 'mp4', input.output);
  return args;
}
