import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RotatingFileStream } from '../src/log.js';
import { tempDir } from './helpers/tmp.js';

describe('rotating log file', () => {
  it('keeps video_downloader.log live and at most five 1 MB backups', () => {
    const dir = tempDir();
    const file = path.join(dir, 'video_downloader.log');
    const stream = new RotatingFileStream(file);
    const line = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < 1024 * 8; i++) stream.write(line);
    stream.close();
    assert.deepEqual(readdirSync(dir).sort(), [
      'video_downloader.log',
      'video_downloader.log.1',
      'video_downloader.log.2',
      'video_downloader.log.3',
      'video_downloader.log.4',
      'video_downloader.log.5',
    ]);
    for (let i = 1; i <= 5; i++) assert.ok(statSync(`${file}.${i}`).size <= 1024 * 1024);
    assert.ok(!existsSync(`${file}.6`));
  });

  it('appends to an existing log across restarts', () => {
    const dir = tempDir();
    const file = path.join(dir, 'video_downloader.log');
    const a = new RotatingFileStream(file);
    a.write('one\n');
    a.close();
    const b = new RotatingFileStream(file);
    b.write('two\n');
    b.close();
    assert.equal(statSync(file).size, 8);
  });
});
