/**
 * Subtitles in fragmented MP4 (media/fmp4-text.ts, pipeline/hls/subtitle-formats.ts): stpp samples
 * (TTML documents, timed on the track's clock or from the sample's start) and wvtt samples (cue boxes
 * shown for their sample), out of hand-made init and media segments that ffprobe reads as well.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { looksFmp4 } from '../../src/media/fmp4-reader.js';
import { fmp4TextCues, textTrackInit } from '../../src/media/fmp4-text.js';
import { asWebVtt } from '../../src/pipeline/hls/subtitle-formats.js';
import { parseWebVtt } from '../../src/playlist/webvtt-parser.js';
import { makeTempDir, runFfprobe } from '../helpers/fixtures.js';
import { textInit, textSegment, wvttSample } from '../helpers/fmp4-text.js';

const ttml = (cues: [string, string, string][]) =>
  Buffer.from(
    `<?xml version="1.0" encoding="UTF-8"?><tt xmlns="http://www.w3.org/ns/ttml"><body><div>${cues
      .map(([b, e, t]) => `<p begin="${b}" end="${e}">${t}</p>`)
      .join('')}</div></body></tt>`,
  );
const cues = (list: readonly { start: number; end: number; text: string; settings?: string }[]) =>
  list.map((c) => [c.start, c.end, c.text, ...(c.settings ? [c.settings] : [])]);

describe('fMP4 text tracks', () => {
  test('stpp: TTML samples timed on the track clock, or from the sample start', () => {
    const init = textTrackInit(textInit('stpp', 1000))!;
    assert.equal(init.codec, 'stpp');
    // Segment 3 of 2 s: [4, 6) s. One sample timed on the track clock, then one from its own start.
    const segment = textSegment(3, 4000, [
      { duration: 1000, data: ttml([['00:00:04.200', '00:00:04.800', 'absolute']]) },
      { duration: 1000, data: ttml([['0.25s', '0.75s', 'relative']]) },
    ]);
    assert.ok(looksFmp4(segment));
    assert.deepEqual(cues(fmp4TextCues(segment, init)), [
      [4.2, 4.8, 'absolute'],
      [5.25, 5.75, 'relative'],
    ]);
  });

  test('wvtt: each cue box is shown for its sample; an empty sample (vtte) shows none', () => {
    const init = textTrackInit(textInit('wvtt', 90_000))!;
    const segment = textSegment(1, 90_000, [
      { duration: 45_000, data: wvttSample([{ text: 'one', settings: 'line:0' }, { text: 'two' }]) },
      { duration: 45_000, data: wvttSample([]) },
      { duration: 90_000, data: wvttSample([{ text: 'three' }]) },
    ]);
    assert.deepEqual(cues(fmp4TextCues(segment, init)), [
      [1, 1.5, 'one', 'line:0'],
      [1, 1.5, 'two'],
      [2, 3, 'three'],
    ]);
  });

  test('a segment becomes WebVTT whose X-TIMESTAMP-MAP puts its cues on the 90 kHz clock', () => {
    const init = textTrackInit(textInit('wvtt', 1000))!;
    const segment = textSegment(1, 10_000, [{ duration: 2000, data: wvttSample([{ text: 'ten' }]) }]);
    const doc = parseWebVtt(asWebVtt(segment, init));
    assert.deepEqual(doc.timestampMap, { mpegts: 900_000, local: 0 });
    assert.deepEqual(cues(doc.cues), [[0, 2, 'ten']]);
    // Text stays text: WebVTT as it is, TTML as WebVTT.
    assert.equal(asWebVtt(Buffer.from('WEBVTT\n'), init), 'WEBVTT\n');
    assert.deepEqual(cues(parseWebVtt(asWebVtt(ttml([['1s', '2s', 'x']]), null)).cues), [[1, 2, 'x']]);
  });

  test('an init segment without a text track has none to read', () => {
    const audio = Buffer.from(textInit('stpp', 1000).toString('latin1').replace('stpp', 'mp4a'), 'latin1');
    assert.equal(textTrackInit(audio), null);
  });

  test('ffprobe reads the hand-made segments: one track with the codec tag written', async () => {
    const dir = await makeTempDir('fmp4-text');
    for (const codec of ['stpp', 'wvtt'] as const) {
      const data = codec === 'stpp' ? ttml([['0s', '1s', 'x']]) : wvttSample([{ text: 'x' }]);
      const file = path.join(dir, `${codec}.mp4`);
      await writeFile(
        file,
        Buffer.concat([textInit(codec, 1000), textSegment(1, 0, [{ duration: 1000, data }])]),
      );
      const out = await runFfprobe([
        '-show_entries',
        'stream=codec_type,codec_tag_string',
        '-of',
        'csv=p=0',
        file,
      ]);
      // ffmpeg 5.1 reads the track and its sample entry, but decodes neither codec (a data stream).
      assert.equal(out.toString().trim(), `data,${codec}`);
    }
  });
});
