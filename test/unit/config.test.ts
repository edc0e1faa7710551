import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/service/config.js';
import { isGabeError } from '../../src/service/errors.js';
import { tempDir } from '../helpers/tmp.js';

const SPEC_KEYS = [
  'temp_path',
  'output_path',
  'default_resolution',
  'use_multithreading',
  'max_concurrent_downloads',
  'max_queue_size',
  'proxy',
  'chunk_size',
  'max_retries',
  'connection_timeout',
  'ffmpeg_path',
  'clean_jobs_after_days',
  'max_jobs_per_ip',
];

function writeConfig(dir: string, value: unknown): string {
  const file = path.join(dir, 'config.json');
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isGabeError(err, 'CONFIG'), `expected GABE_ERR_CONFIG, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected a configuration error');
}

describe('config', () => {
  it('a missing file means the spec defaults, with every spec key present', () => {
    const dir = tempDir();
    const c = loadConfig({ file: path.join(dir, 'config.json'), env: {} });
    for (const key of SPEC_KEYS) assert.ok(key in c, `missing ${key}`);
    assert.equal(c.max_concurrent_downloads, 5);
    assert.equal(c.max_queue_size, 100);
    assert.equal(c.chunk_size, 1048576);
    assert.equal(c.max_retries, 3);
    assert.equal(c.connection_timeout, 10);
    assert.equal(c.clean_jobs_after_days, 7);
    assert.equal(c.max_jobs_per_ip, 5);
    assert.equal(c.use_multithreading, true);
    assert.equal(c.default_resolution, null);
    assert.equal(c.proxy, null);
    assert.equal(c.ffmpeg_path, null);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8000);
    assert.equal(c.allow_private_networks, false);
    assert.equal(c.trust_proxy, false);
    assert.ok(Object.isFrozen(c));
  });

  it('the original spec config.json loads unchanged', () => {
    const dir = tempDir();
    const file = writeConfig(dir, {
      temp_path: 'temp',
      output_path: 'downloads',
      default_resolution: null,
      use_multithreading: true,
      max_concurrent_downloads: 5,
      max_queue_size: 100,
      proxy: null,
      chunk_size: 1048576,
      max_retries: 3,
      connection_timeout: 10,
      ffmpeg_path: null,
      clean_jobs_after_days: 7,
      max_jobs_per_ip: 5,
    });
    const c = loadConfig({ file, env: {} });
    assert.equal(c.output_path, path.join(dir, 'downloads'));
  });

  it('relative paths resolve against the config file folder, absolute ones stay', () => {
    const dir = tempDir();
    const file = writeConfig(dir, {
      temp_path: 'scratch',
      output_path: '/srv/videos',
      database_path: 'db/jobs.db',
    });
    const c = loadConfig({ file, env: {} });
    assert.equal(c.temp_path, path.join(dir, 'scratch'));
    assert.equal(c.output_path, '/srv/videos');
    assert.equal(c.database_path, path.join(dir, 'db/jobs.db'));
    assert.equal(c.log_path, path.join(dir, 'logs'));
  });

  it('an unknown key stops start-up naming the key', () => {
    const file = writeConfig(tempDir(), { max_concurent_downloads: 3 });
    assert.match(
      configError(() => loadConfig({ file, env: {} })),
      /unknown key "max_concurent_downloads"/,
    );
  });

  it('a wrong type names the key', () => {
    const file = writeConfig(tempDir(), { max_retries: 'three' });
    assert.match(
      configError(() => loadConfig({ file, env: {} })),
      /"max_retries"/,
    );
  });

  it('a bad value names the key', () => {
    const dir = tempDir();
    for (const [key, value] of [
      ['max_concurrent_downloads', 0],
      ['connection_timeout', -1],
      ['default_resolution', 'huge'],
      ['proxy', 'ftp://x'],
      ['port', 70000],
    ] as const) {
      const file = writeConfig(dir, { [key]: value });
      assert.match(
        configError(() => loadConfig({ file, env: {} })),
        new RegExp(`"${key}"`),
        key,
      );
    }
  });

  it('low_speed_limit and low_speed_time: 1024 bytes/s over 30 s by default, 0 turns the floor off, bad values name the key', () => {
    const dir = tempDir();
    const d = loadConfig({ file: path.join(dir, 'none.json'), env: {} });
    assert.equal(d.low_speed_limit, 1024);
    assert.equal(d.low_speed_time, 30);
    const off = loadConfig({ file: writeConfig(dir, { low_speed_limit: 0, low_speed_time: 0.5 }), env: {} });
    assert.equal(off.low_speed_limit, 0);
    assert.equal(off.low_speed_time, 0.5);
    for (const [key, value] of [
      ['low_speed_limit', -1],
      ['low_speed_limit', 1.5],
      ['low_speed_limit', 'fast'],
      ['low_speed_time', 0],
      ['low_speed_time', -5],
      ['low_speed_time', 3601],
    ] as const) {
      const file = writeConfig(dir, { [key]: value });
      assert.match(
        configError(() => loadConfig({ file, env: {} })),
        new RegExp(`"${key}"`),
        `${key} = ${value}`,
      );
    }
  });

  it('a file that is not JSON is reported with its path', () => {
    const file = writeConfig(tempDir(), '{ "port": 80, }');
    assert.match(
      configError(() => loadConfig({ file, env: {} })),
      /not valid JSON/,
    );
  });

  it('GABE_<KEY> environment variables override the file, and are validated too', () => {
    const dir = tempDir();
    const file = writeConfig(dir, { port: 9000, use_multithreading: true });
    const c = loadConfig({
      file,
      env: { GABE_PORT: '9100', GABE_USE_MULTITHREADING: 'false', GABE_PROXY: 'http://proxy:3128' },
    });
    assert.equal(c.port, 9100);
    assert.equal(c.use_multithreading, false);
    assert.equal(c.proxy, 'http://proxy:3128');
    assert.match(
      configError(() => loadConfig({ file, env: { GABE_PORT: 'abc' } })),
      /"port"/,
    );
  });

  it('trust_proxy takes false, true, a hop count or a list of addresses and CIDR ranges, and refuses anything else', () => {
    const dir = tempDir();
    for (const value of [false, true, 2, ['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', 'loopback']]) {
      const c = loadConfig({ file: writeConfig(dir, { trust_proxy: value }), env: {} });
      assert.deepEqual(c.trust_proxy, value);
    }
    for (const value of [
      0,
      -1,
      1.5,
      33,
      'yes',
      [],
      ['proxy.example'],
      ['10.0.0.0/33'],
      ['::1/129'],
      ['10.0.0.1/x'],
    ]) {
      assert.match(
        configError(() => loadConfig({ file: writeConfig(dir, { trust_proxy: value }), env: {} })),
        /"trust_proxy"/,
        JSON.stringify(value),
      );
    }
    const env = loadConfig({ file: writeConfig(dir, {}), env: { GABE_TRUST_PROXY: '["10.1.0.0/16"]' } });
    assert.deepEqual(env.trust_proxy, ['10.1.0.0/16']);
    assert.equal(loadConfig({ file: writeConfig(dir, {}), env: { GABE_TRUST_PROXY: '3' } }).trust_proxy, 3);
  });

  it('allowed_hosts takes null or a list of host names and addresses, and refuses entries that could never match', () => {
    const dir = tempDir();
    for (const value of [
      null,
      ['*'],
      ['gabe.example', 'localhost', '192.0.2.1', '::1', '[::1]', 'my_host.lan.'],
    ]) {
      const c = loadConfig({ file: writeConfig(dir, { allowed_hosts: value }), env: {} });
      assert.deepEqual(c.allowed_hosts, value);
    }
    for (const value of [[], 'gabe.example', ['gabe.example:8000'], ['http://gabe.example'], ['a b'], ['']]) {
      assert.match(
        configError(() => loadConfig({ file: writeConfig(dir, { allowed_hosts: value }), env: {} })),
        /"allowed_hosts/,
        JSON.stringify(value),
      );
    }
    const env = loadConfig({ file: writeConfig(dir, {}), env: { GABE_ALLOWED_HOSTS: '["gabe.example"]' } });
    assert.deepEqual(env.allowed_hosts, ['gabe.example']);
  });

  it('event stream caps and max_attempts default to 1000, 20 and 3, and refuse values below 1', () => {
    const dir = tempDir();
    const c = loadConfig({ file: writeConfig(dir, {}), env: {} });
    assert.equal(c.max_event_streams, 1000);
    assert.equal(c.max_event_streams_per_client, 20);
    assert.equal(c.max_attempts, 3);
    for (const key of ['max_event_streams', 'max_event_streams_per_client', 'max_attempts']) {
      for (const value of [0, -1, 1.5, 'many']) {
        assert.match(
          configError(() => loadConfig({ file: writeConfig(dir, { [key]: value }), env: {} })),
          new RegExp(`"${key}"`),
          `${key}: ${value}`,
        );
      }
    }
  });

  it('CLI overrides win over environment and file', () => {
    const file = writeConfig(tempDir(), { port: 9000 });
    const c = loadConfig({ file, env: { GABE_PORT: '9100' }, overrides: { port: 9200, host: undefined } });
    assert.equal(c.port, 9200);
    assert.equal(c.host, '127.0.0.1');
  });
});
