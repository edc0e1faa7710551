/**
 * HLS track checkpoints must be replaced atomically, as the MP4 part file's are: a process that dies
 * mid-write, or a reader that looks while a write is under way, must find the previous checkpoint or
 * the new one, never half of one (which reads as no checkpoint, so the whole track is fetched again).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readCheckpoint, type TrackCheckpoint, writeCheckpoint } from '../../src/pipeline/hls/checkpoint.js';
import { tempDir } from '../helpers/tmp.js';

/** A checkpoint of a long stream: thousands of discontinuity runs make it hundreds of kilobytes. */
function checkpoint(n: number): TrackCheckpoint {
  return {
    fingerprint: 'fp',
    fetches: n,
    bytes: n * 1000,
    segments: n,
    lastMsn: n,
    seconds: n * 2,
    runStarts: Array.from({ length: 40_000 }, (_, i) => i * 188 + n),
  };
}

describe('HLS track checkpoints', () => {
  it('are never seen half-written by a reader while they are rewritten', async () => {
    const file = path.join(tempDir('track-cp-'), 'video.ts');
    await writeCheckpoint(file, checkpoint(0));
    let writing = true;
    let reads = 0;
    const torn: string[] = [];
    // Reads and writes both run on libuv's thread pool, so they really interleave.
    const reader = (async () => {
      while (writing) {
        const text = await readFile(`${file}.json`, 'utf8');
        reads++;
        try {
          JSON.parse(text);
        } catch {
          torn.push(`${text.length} bytes`);
        }
      }
    })();
    for (let i = 1; i <= 150; i++) await writeCheckpoint(file, checkpoint(i));
    writing = false;
    await reader;
    assert.ok(reads > 10, `only ${reads} reads overlapped the writes`);
    assert.deepEqual(torn, [], `${torn.length} of ${reads} reads saw a half-written checkpoint`);
    assert.equal((await readCheckpoint(file, 'fp'))?.fetches, 150);
  });

  it('survive a write torn by a crash: the last complete checkpoint is read, the torn temp file ignored', async () => {
    const file = path.join(tempDir('track-cp-'), 'audio.ts');
    await writeCheckpoint(file, checkpoint(7));
    // What a process killed mid-write leaves: the start of the next checkpoint in the temp file.
    const next = JSON.stringify(checkpoint(8));
    await writeFile(`${file}.json.tmp`, next.slice(0, next.length / 2));
    const cp = await readCheckpoint(file, 'fp');
    assert.equal(cp?.fetches, 7);
    await writeCheckpoint(file, checkpoint(9));
    assert.equal((await readCheckpoint(file, 'fp'))?.fetches, 9, 'the next write replaces the torn one');
  });
});
