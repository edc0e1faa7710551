import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createLogger, LOG_FILE_NAME, RotatingFileStream } from '../../src/service/log.js';
import { tempDir } from '../helpers/tmp.js';

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

describe('log lines and URL credentials', () => {
  it('masks user:pass@ of URLs in messages, fields, nested fields, errors and child bindings', async () => {
    const dir = tempDir();
    const log = createLogger({ logPath: dir, stdout: false });
    const url = 'https://alice:s3cret-pw@example.com/v.m3u8';
    log.info({ url }, 'job started');
    log.warn(`fetch of ${url} failed`);
    log.warn({ attempt: { urls: [url] }, err: new Error(`HTTP 404 from ${url}`) }, 'retrying');
    log.child({ job_id: 'j1' }).child({ source: url }).error('job failed');
    await new Promise((r) => setTimeout(r, 50));
    const text = readFileSync(path.join(dir, LOG_FILE_NAME), 'utf8');
    assert.equal(text.trim().split('\n').length, 4);
    assert.ok(!text.includes('s3cret-pw'), text);
    assert.ok(!text.includes('alice'), text);
    assert.match(text, /"job_id":"j1","source":"https:\/\/\*\*\*:\*\*\*@example\.com/);
    assert.equal(text.match(/https:\/\/\*\*\*:\*\*\*@example\.com\/v\.m3u8/g)?.length, 6, text);
  });
});
