import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRangeHeader, planFileResponse } from '../../src/api/file-ranges.js';
import { contentTypeOf } from '../../src/storage/names.js';
import { isRetryableS3Error, isS3NotFound, partSizeFor } from '../../src/storage/s3.js';
import { formatS3Url, parseS3Url } from '../../src/storage/s3-url.js';

describe('s3:// URLs', () => {
  it('round-trips bucket and key, the key kept as written (spaces, unicode, slashes)', () => {
    for (const key of ['gabe/1234/video.mp4', 'a b (1).mp4', 'ünï/cödé.en.vtt', 'x//y', 'k?v#h']) {
      const url = formatS3Url('bucket-1', key);
      assert.deepEqual(parseS3Url(url), { bucket: 'bucket-1', key });
    }
    assert.equal(formatS3Url('b', 'p/k.mp4'), 's3://b/p/k.mp4');
  });

  it('refuses what is not an s3 object URL: local paths, other schemes, no bucket or no key', () => {
    for (const url of [
      '/out/video.mp4',
      'https://b/k',
      's3://',
      's3://bucket',
      's3://bucket/',
      's3:///key',
    ]) {
      assert.equal(parseS3Url(url), null, url);
    }
  });
});

describe('multipart uploads', () => {
  it('uses 8 MiB parts, larger ones only where 10,000 parts would not hold the file', () => {
    const MiB = 1024 * 1024;
    assert.equal(partSizeFor(0), 8 * MiB);
    assert.equal(partSizeFor(20 * MiB), 8 * MiB);
    assert.equal(partSizeFor(80_000 * MiB), 8 * MiB);
    const huge = 200 * 1024 * MiB;
    assert.ok(partSizeFor(huge) > 8 * MiB);
    assert.ok(Math.ceil(huge / partSizeFor(huge)) <= 10_000);
  });
});

describe('S3 errors', () => {
  const sdkError = (name: string, status?: number) =>
    Object.assign(new Error(name), {
      name,
      $metadata: status === undefined ? {} : { httpStatusCode: status },
    });

  it('retries throttling, server failures and unreachable endpoints, not refusals', () => {
    assert.equal(isRetryableS3Error(sdkError('SlowDown', 503)), true);
    assert.equal(isRetryableS3Error(sdkError('InternalError', 500)), true);
    assert.equal(isRetryableS3Error(sdkError('RequestTimeout', 408)), true);
    assert.equal(isRetryableS3Error(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), true);
    assert.equal(isRetryableS3Error(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true);
    assert.equal(isRetryableS3Error(sdkError('TimeoutError')), true);
    assert.equal(isRetryableS3Error(sdkError('AccessDenied', 403)), false);
    assert.equal(isRetryableS3Error(sdkError('NoSuchBucket', 404)), false);
    assert.equal(isRetryableS3Error(sdkError('NotImplemented', 501)), false);
    // A local file that vanished will not come back by asking S3 again.
    assert.equal(isRetryableS3Error(Object.assign(new Error('gone'), { code: 'ENOENT' })), false);
  });

  it('knows a missing object by status or by name', () => {
    assert.equal(isS3NotFound(sdkError('NotFound', 404)), true);
    assert.equal(isS3NotFound(sdkError('NoSuchKey')), true);
    assert.equal(isS3NotFound(sdkError('AccessDenied', 403)), false);
  });
});

describe('file responses (both storages)', () => {
  const etag = '"abc-3"';

  it('answers 304 to a matching If-None-Match, whatever the Range', () => {
    assert.deepEqual(planFileResponse({ 'if-none-match': etag, range: 'bytes=0-1' }, 10, etag), {
      status: 304,
    });
  });

  it('answers 206 for one satisfiable range, 416 for one past the end', () => {
    assert.deepEqual(planFileResponse({ range: 'bytes=2-5' }, 10, etag), { status: 206, start: 2, end: 5 });
    assert.deepEqual(planFileResponse({ range: 'bytes=-3' }, 10, etag), { status: 206, start: 7, end: 9 });
    assert.deepEqual(planFileResponse({ range: 'bytes=10-' }, 10, etag), { status: 416 });
    assert.deepEqual(planFileResponse({}, 10, etag), { status: 200 });
  });

  it('sends the whole file when If-Range names another version', () => {
    assert.deepEqual(planFileResponse({ range: 'bytes=2-5', 'if-range': '"old"' }, 10, etag), {
      status: 200,
    });
    assert.deepEqual(planFileResponse({ range: 'bytes=2-5', 'if-range': etag }, 10, etag), {
      status: 206,
      start: 2,
      end: 5,
    });
  });

  it('ignores several ranges and refuses malformed ones', () => {
    assert.equal(parseRangeHeader('bytes=0-1,4-5', 10), null);
    assert.equal(parseRangeHeader('bytes=x-1', 10), 'invalid');
  });

  it('gives finished files their media type', () => {
    assert.equal(contentTypeOf('/o/a.mp4'), 'video/mp4');
    assert.equal(contentTypeOf('a.M4A'), 'audio/mp4');
    assert.equal(contentTypeOf('a.en.vtt'), 'text/vtt');
  });
});
