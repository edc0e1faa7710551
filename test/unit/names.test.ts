import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { nameFromUrl, sanitizeName } from '../../src/storage/names.js';
import { isInside } from '../../src/storage/paths.js';

describe('file names', () => {
  it('removes path separators and traversal so a name stays one component', () => {
    for (const evil of [
      '../../etc/passwd',
      '..\\..\\windows\\system32',
      '/abs/path',
      '..',
      '.',
      'a/../../b',
    ]) {
      const name = sanitizeName(evil);
      assert.ok(!name.includes('/') && !name.includes('\\'), name);
      assert.ok(!name.includes('..'), name);
      assert.ok(isInside('/out', path.join('/out', `${name}.mp4`)), name);
    }
  });

  it('strips control characters, reserved characters and bidi overrides', () => {
    assert.equal(sanitizeName('a\u0000b\u001fc\u007f'), 'a_b_c');
    assert.equal(sanitizeName('what?: "a" <b> | *c*'), 'what_ _a_ _b_ _ _c');
    assert.equal(sanitizeName('evil\u202Egpj.mp4'), 'evilgpj');
  });

  it('prefixes Windows device names', () => {
    assert.equal(sanitizeName('CON'), '_CON');
    assert.equal(sanitizeName('lpt1.backup'), '_lpt1.backup');
    assert.equal(sanitizeName('console'), 'console');
  });

  it('caps names at 200 bytes without splitting a character', () => {
    const name = sanitizeName('é'.repeat(300));
    assert.ok(Buffer.byteLength(name) <= 200);
    assert.equal(name, 'é'.repeat(100));
    const emoji = sanitizeName('😀'.repeat(100));
    assert.ok(Buffer.byteLength(emoji) <= 200);
    assert.doesNotMatch(emoji, /\uFFFD/);
  });

  it('keeps Unicode names readable', () => {
    assert.equal(sanitizeName('Cours de français — épisode 1'), 'Cours de français — épisode 1');
    assert.equal(sanitizeName('日本語のビデオ'), '日本語のビデオ');
  });

  it('falls back when nothing usable is left, and drops a video extension', () => {
    assert.equal(sanitizeName('   '), 'video');
    assert.equal(sanitizeName('///'), 'video');
    assert.equal(sanitizeName(null), 'video');
    assert.equal(sanitizeName('movie.mp4'), 'movie');
  });

  it('derives a default name from the URL, skipping generic playlist names', () => {
    assert.equal(nameFromUrl('https://cdn.example/v/big_buck_bunny.mp4?sig=abc'), 'big_buck_bunny');
    assert.equal(nameFromUrl('https://cdn.example/shows/episode-12/master.m3u8'), 'episode-12');
    assert.equal(nameFromUrl('https://cdn.example/My%20Movie.mp4'), 'My Movie');
    assert.equal(nameFromUrl('https://cdn.example/'), 'video');
    assert.equal(nameFromUrl('https://cdn.example/%2e%2e%2f%2e%2e%2fetc'), 'etc');
  });
});
