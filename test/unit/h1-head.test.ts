/** The own HTTP/1.1 client's head parsing (src/net/transports/h1-head.ts), on heads written out by hand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldsOf } from '../../src/net/transports/h1-head.js';

const head = (...fields: string[]) => ['HTTP/1.1 200 OK', ...fields].join('\r\n');

describe('response header fields', () => {
  it('reads an obs-fold continuation as one SP joined to the field before it (RFC 9112 5.2)', () => {
    const fields = fieldsOf(head('X-Folded: first', ' continued', '\tand more', 'Content-Length: 3'));
    assert.equal(fields['x-folded'], 'first continued and more');
    assert.equal(fields['content-length'], '3');
  });

  it('folds into the last Set-Cookie value, which stays a field of its own', () => {
    const fields = fieldsOf(head('Set-Cookie: a=1', 'Set-Cookie: b=2;', '  Path=/'));
    assert.deepEqual(fields['set-cookie'], ['a=1', 'b=2; Path=/']);
  });

  it('ignores a continuation with no field before it', () => {
    assert.deepEqual(fieldsOf(head(' stray', 'A: 1')), { a: '1' });
  });

  it('joins repeated fields with ", " and keeps names case-insensitive', () => {
    assert.deepEqual(fieldsOf(head('Vary: a', 'vary: b')), { vary: 'a, b' });
  });
});
