/**
 * TTML subtitles read as WebVTT cues (playlist/ttml.ts): time expressions, timing inherited from
 * enclosing elements, text with line breaks and spans, and ffmpeg's own TTML of a WebVTT file read back
 * to that file's cues.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { isTtml, parseTtml, parseTtmlTime } from '../../src/playlist/ttml.js';
import { parseWebVtt } from '../../src/playlist/webvtt-parser.js';
import { makeTempDir, runFfmpeg } from '../helpers/fixtures.js';

const cuesOf = (doc: string) => parseTtml(doc)?.map((c) => [c.start, c.end, c.text]);
const tt = (attrs: string, body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter" ${attrs}><head/><body>${body}</body></tt>`;

describe('TTML time expressions (TTML2 10.3.1)', () => {
  const rates = { frameRate: 25, subFrameRate: 1, tickRate: 10_000_000 };
  test('clock times, with fractions or frames', () => {
    assert.equal(parseTtmlTime('01:02:03.250', rates), 3723.25);
    assert.equal(parseTtmlTime('00:00:01:05', rates), 1.2);
    assert.equal(parseTtmlTime(' 00:00:10 ', rates), 10);
  });
  test('offsets in hours, minutes, seconds, milliseconds, frames and ticks', () => {
    const got = ['1.5h', '2m', '3.5s', '250ms', '50f', '5000000t'].map((v) => parseTtmlTime(v, rates));
    assert.deepEqual(got, [5400, 120, 3.5, 0.25, 2, 0.5]);
  });
  test('anything else is not a time', () => {
    for (const v of ['', 'abc', '1:2:3', '10x', '-1s', '00:00:60.0.1'])
      assert.equal(parseTtmlTime(v, rates), null, v);
  });
});

describe('TTML documents', () => {
  test('tick times, a div that starts later, line breaks, spans and collapsed white space', () => {
    const doc = tt(
      'ttp:tickRate="10000000"',
      `<div begin="10s"><p xml:id="c1" begin="5000000t" end="20000000t">Hallo <span tts:color="yellow">Welt</span><br/>
         zweite   Zeile &amp; mehr</p></div>`,
    );
    assert.deepEqual(cuesOf(doc), [[10.5, 12, 'Hallo Welt\nzweite Zeile &amp; mehr']]);
    assert.equal(parseTtml(doc)![0]!.id, 'c1');
  });

  test("dur, ends cut at the parent's end, a p without end inside a timed div, and untimed text left out", () => {
    const doc = tt(
      'ttp:frameRate="25"',
      `<div begin="00:00:05:00" end="8s"><p begin="1s" dur="500ms">dur</p><p begin="2s" end="9s">clamped</p><p begin="2.5s">open</p></div><div><p>never ends</p></div>`,
    );
    assert.deepEqual(cuesOf(doc), [
      [6, 6.5, 'dur'],
      [7, 8, 'clamped'],
      [7.5, 8, 'open'],
    ]);
  });

  test('a prologue of 140,000 empty comments is read once through (a regular expression took minutes)', {
    timeout: 10_000,
  }, () => {
    assert.equal(isTtml(`${'<!---->'.repeat(140_000)}x`), false);
    assert.equal(isTtml(`${'<!-- c -->\n'.repeat(140_000)}<tt>`), true);
  });

  test('only a document whose root is <tt> is TTML; broken XML gives no cues', () => {
    assert.equal(isTtml('WEBVTT\n\n00:00.000 --> 00:01.000\nx\n'), false);
    assert.equal(isTtml('\uFEFF<?xml version="1.0"?>\n<!-- made by hand -->\n<tt:tt xmlns:tt="x">'), true);
    assert.equal(parseTtml('<MPD/>'), null);
    assert.equal(parseTtml('<tt><body><div><p begin="1s" end="2s">x</div></body>'), null);
  });

  test("ffmpeg's TTML of a WebVTT file reads back to that file's cues", async () => {
    const dir = await makeTempDir('ttml');
    const vtt = [
      'WEBVTT',
      '',
      '00:00:00.500 --> 00:00:01.500',
      'one',
      '',
      '00:00:02.250 --> 00:00:04.000',
      'two lines',
      'of text',
      '',
      '00:01:05.000 --> 00:01:07.125',
      'later',
      '',
    ].join('\n');
    await writeFile(path.join(dir, 'in.vtt'), vtt);
    await runFfmpeg(['-v', 'error', '-i', 'in.vtt', '-c:s', 'ttml', '-f', 'ttml', 'out.ttml'], dir);
    const expected = parseWebVtt(vtt).cues.map((c) => [c.start, c.end, c.text]);
    assert.deepEqual(cuesOf(await readFile(path.join(dir, 'out.ttml'), 'utf8')), expected);
  });
});
