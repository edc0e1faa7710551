/**
 * The pure parts of items 8 and 9: which hop carries which credentials (net/credentials.ts) and how
 * a URL with credentials is shown (net/redact.ts). The behaviour on the wire is proven against raw
 * origins in hostile-redirect.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  basicAuthorization,
  hopHeaders,
  originCredentials,
  withoutCredentials,
  withoutUserinfo,
} from '../../src/net/credentials.js';
import { redactCredentials } from '../../src/net/redact.js';

describe('redactCredentials', () => {
  const cases: [string, string][] = [
    ['https://alice:s3cret@example.com/v.m3u8', 'https://***:***@example.com/v.m3u8'],
    ['https://TOKEN@example.com/v.m3u8', 'https://***:***@example.com/v.m3u8'],
    ['http://a%40b:p%2Fw@example.com:8080/x?q=1', 'http://***:***@example.com:8080/x?q=1'],
    // WHATWG URL takes the last @ before the path as the end of the credentials.
    ['http://a@b:pw@example.com/', 'http://***:***@example.com/'],
    // Spellings WHATWG URL accepts for http(s) without `//` after the scheme.
    ['http:alice:s3cret@example.com/v.mp4', 'http://***:***@example.com/v.mp4'],
    ['https:\\\\alice:s3cret@example.com\\v.mp4', 'https://***:***@example.com/v.mp4'],
    [
      'more than 10 redirects from http://u:p@a.example/x (then http://v:q@b.example/y)',
      'more than 10 redirects from http://***:***@a.example/x (then http://***:***@b.example/y)',
    ],
    ['socks5://user:pw@proxy.example:1080', 'socks5://***:***@proxy.example:1080'],
  ];
  for (const [input, shown] of cases) {
    it(`shows ${JSON.stringify(input)} as ${JSON.stringify(shown)}`, () => {
      assert.equal(redactCredentials(input), shown);
    });
  }

  it('leaves text without URL credentials as it is (an @ in a path or an e-mail address)', () => {
    for (const text of [
      'https://example.com/v.m3u8',
      'https://example.com/@user/video.mp4',
      'https://example.com/v.mp4?by=me@example.com',
      'write to ops@example.com',
      'not a url',
    ]) {
      assert.equal(redactCredentials(text), text);
    }
  });
});

describe('credentials per hop', () => {
  it('turns user:pass@ into Basic auth, percent-decoded as curl and Node do', () => {
    assert.equal(
      basicAuthorization(new URL('http://al%20ice:p%3Aw%40@h/')),
      `Basic ${Buffer.from('al ice:p:w@').toString('base64')}`,
    );
    assert.equal(
      basicAuthorization(new URL('http://tok@h/')),
      `Basic ${Buffer.from('tok:').toString('base64')}`,
    );
    assert.equal(basicAuthorization(new URL('http://h/')), null);
  });

  it('binds a URL’s credentials to its origin: scheme, host and port', () => {
    const creds = originCredentials('http://u:p@example.com/a.m3u8');
    assert.equal(creds?.origin, 'http://example.com');
    // Default ports are the same origin; another scheme or port is not.
    assert.equal(new URL('http://example.com:80/x').origin, creds?.origin);
    assert.notEqual(new URL('https://example.com/x').origin, creds?.origin);
    assert.notEqual(new URL('http://example.com:8080/x').origin, creds?.origin);
    assert.equal(originCredentials('http://example.com/'), null);
    assert.equal(originCredentials('not a url'), null);
  });

  it('never sends credentials as part of a URL', () => {
    assert.equal(withoutUserinfo(new URL('https://u:p@h:8443/x?y#z')).href, 'https://h:8443/x?y#z');
  });

  it('drops Authorization, Cookie and Proxy-Authorization (any case) and keeps the rest', () => {
    assert.deepEqual(
      withoutCredentials({
        Authorization: 'Bearer t',
        cookie: 'a=1',
        'Proxy-Authorization': 'Basic x',
        referer: 'https://r/',
        'user-agent': 'ua',
      }),
      { referer: 'https://r/', 'user-agent': 'ua' },
    );
  });

  it('adds Basic auth unless the job set its own Authorization (as curl’s -H wins over -u), and nothing once the chain left', () => {
    const basic = 'Basic dTpw';
    assert.deepEqual(hopHeaders({ referer: 'r' }, false, basic), { referer: 'r', authorization: basic });
    assert.deepEqual(hopHeaders({ Authorization: 'Bearer t' }, false, basic), { Authorization: 'Bearer t' });
    assert.deepEqual(hopHeaders({ authorization: 'Bearer t', cookie: 'c', referer: 'r' }, true, basic), {
      referer: 'r',
    });
  });
});
