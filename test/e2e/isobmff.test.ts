import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { probeIsoBmff } from '../../src/media/mp4-probe.js';
import { ffprobeJson, type Mp4Fixture, makeMp4, makeTempDir, runFfmpeg } from '../helpers/fixtures.js';

describe('in-process MP4 check (instead of ffprobe)', () => {
  let mp4: Mp4Fixture;
  let dir: string;
  before(async () => {
    mp4 = await makeMp4({ seconds: 3, width: 320, height: 180 });
    dir = await makeTempDir('isobmff');
  });

  it('reads what ffprobe reads from a faststart MP4 and from one with the moov at the end', async () => {
    const tail = path.join(dir, 'tail.mp4');
    await runFfmpeg(['-v', 'error', '-i', mp4.file, '-c', 'copy', '-movflags', '-faststart', tail]);
    for (const file of [mp4.file, tail]) {
      const ours = await probeIsoBmff(file);
      const theirs = await ffprobeJson(file);
      assert.ok(ours, file);
      assert.ok(Math.abs(Number(ours.format.duration) - Number(theirs.format.duration)) < 0.05);
      const v = ours.streams.find((s) => s.codec_type === 'video')!;
      const tv = theirs.streams.find((s) => s.codec_type === 'video')!;
      assert.deepEqual([v.width, v.height], [tv.width, tv.height]);
      assert.deepEqual(
        ours.streams.map((s) => s.codec_type).sort(),
        theirs.streams.map((s) => s.codec_type).sort(),
      );
    }
  });

  it('leaves to ffprobe what it does not fully recognise: truncated, fragmented, not MP4 at all', async () => {
    const whole = readFileSync(mp4.file);
    const truncated = path.join(dir, 'truncated.mp4');
    writeFileSync(truncated, whole.subarray(0, whole.length - 1000));
    const fragmented = path.join(dir, 'frag.mp4');
    await runFfmpeg([
      '-v',
      'error',
      '-i',
      mp4.file,
      '-c',
      'copy',
      '-movflags',
      'frag_keyframe+empty_moov',
      fragmented,
    ]);
    const ts = path.join(dir, 'v.ts');
    await runFfmpeg(['-v', 'error', '-i', mp4.file, '-c', 'copy', '-f', 'mpegts', ts]);
    const html = path.join(dir, 'page.mp4');
    writeFileSync(html, '<!DOCTYPE html><html><body>Sign in</body></html>');
    const empty = path.join(dir, 'empty.mp4');
    writeFileSync(empty, '');
    for (const file of [truncated, fragmented, ts, html, empty])
      assert.equal(await probeIsoBmff(file), null, file);
  });
});
