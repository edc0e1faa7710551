/**
 * The tags every output file carries: its title (the job's video_name) and where it came from (the
 * job's URL, credentials masked), written as ffmpeg writes `-metadata title=… -metadata comment=…`
 * into an MP4: iTunes-style `moov/udta/meta(hdlr mdir)/ilst` items `©nam` and `©cmt`, each a `data`
 * box of UTF-8 text. ffprobe shows them as the format's `title` and `comment`. Pure: no I/O.
 */
import { redactCredentials } from '../net/redact.js';
import { box, fullBox, u32be } from './mp4-box-writer.js';

export interface FileTags {
  title: string | null;
  comment: string | null;
}

/**
 * The tags of a job's file: its name, and where it came from. The URL loses its query and fragment:
 * signed CDN URLs carry their tokens there (`?token=`, CloudFront's `Signature=`, S3's
 * `X-Amz-Signature=`), and a file is shared far more widely than the job that made it.
 */
export function fileTags(videoName: string, url: string): FileTags {
  return { title: videoName || null, comment: url ? sourceOf(url) : null };
}

/** The URL without query or fragment, credentials masked (`***:***@`) as the API shows them. */
export function sourceOf(url: string): string {
  try {
    const u = new URL(url);
    u.search = '';
    u.hash = '';
    return redactCredentials(u.toString());
  } catch {
    return redactCredentials(url.replace(/[?#].*$/s, ''));
  }
}

/** ffmpeg output options writing the tags (global metadata: ©nam/©cmt in MP4, TITLE/COMMENT in mkv). */
export function metadataArgs(tags: FileTags | undefined): string[] {
  const args: string[] = [];
  if (tags?.title) args.push('-metadata', `title=${tags.title}`);
  if (tags?.comment) args.push('-metadata', `comment=${tags.comment}`);
  return args;
}

/** ilst item types: '©' is byte 0xA9 (box types are four latin1 bytes). */
export const TITLE_ITEM = '\xa9nam';
export const COMMENT_ITEM = '\xa9cmt';

/** One ilst item: a `data` box of type 1 (UTF-8), locale 0. */
function item(type: string, value: string): Buffer {
  return box(type, fullBox('data', 0, 1, u32be(0), Buffer.from(value, 'utf8')));
}

/** The ilst items for the tags, in the order ffmpeg writes them. */
export function ilstItems(tags: FileTags): Buffer[] {
  const out: Buffer[] = [];
  if (tags.title) out.push(item(TITLE_ITEM, tags.title));
  if (tags.comment) out.push(item(COMMENT_ITEM, tags.comment));
  return out;
}

/** meta's handler: 'mdir' (metadata directory), manufacturer 'appl', as iTunes and ffmpeg write it. */
export function mdirHandler(): Buffer {
  return fullBox('hdlr', 0, 0, u32be(0), Buffer.from('mdirappl', 'latin1'), u32be(0, 0), Buffer.alloc(1));
}

/** `meta` holding the items (a full box in MP4, ISO 14496-12 8.11.1). */
export function metaBox(items: readonly Buffer[]): Buffer {
  return fullBox('meta', 0, 0, mdirHandler(), box('ilst', ...items));
}

/** The moov's `udta` for the tags, or null when there is nothing to write. */
export function udtaBox(tags: FileTags | undefined): Buffer | null {
  const items = tags ? ilstItems(tags) : [];
  return items.length > 0 ? box('udta', metaBox(items)) : null;
}
