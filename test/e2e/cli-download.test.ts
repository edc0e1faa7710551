import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toInfoJson } from '../../src/playlist/info.js';
import { parsePlaylist } from '../../src/playlist/parser.js';
import { gabe } from '../helpers/cli.js';
import {
  decodedVideoHash,
  ffprobeJson,
  type HlsMasterFixture,
  type Mp4Fixture,
  makeHlsMaster,
  makeMp4,
} from '../helpers/fixtures.js';
import { mediaIdentity } from '../helpers/media-identity.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { tempDir } from '../helpers/tmp.js';

const CORPUS = path.resolve(import.meta.dirname, '../../../shared/conformance/hls');

describe('gabe download and gabe info', () => {
  let origin: Origin;
  let master: HlsMasterFixture;
  let mp4: Mp4Fixture;

  before(async () => {
    origin = await startOrigin();
    master = await makeHlsMaster();
    mp4 = await makeMp4({ seconds: 2 });
    origin.serveDir('/m/', master.dir);
    // No extension: the kind must come from the response, not the URL.
    origin.addFile('/watch', mp4.file);
  });
  after(() => origin.close());

  it('downloads an HLS master at the requested resolution into the named file', async () => {
    const out = path.join(tempDir(), 'clip.mp4');
    const run = gabe([
      'download',
      `${origin.url}/m/${master.masterName}`,
      '-o',
      out,
      '--resolution',
      '640x360',
      '-n',
      '4',
    ]);
    assert.equal(await run.exit, 0, run.output());
    assert.equal(run.stdout().trim(), out);
    assert.match(run.stderr(), /done: 640x360/);
    const mid = master.variants.find((v) => v.resolution === '640x360')!;
    assert.equal(await decodedVideoHash(out), await decodedVideoHash(`${origin.url}/m/${mid.uri}`));
  });

  it('detects a direct video from the response and downloads it byte for byte', async () => {
    const dir = tempDir();
    const run = gabe(['download', `${origin.url}/watch`], {}, dir);
    assert.equal(await run.exit, 0, run.output());
    const file = run.stdout().trim();
    assert.equal(path.dirname(file), dir);
    assert.equal(mediaIdentity(file), mediaIdentity(mp4.file));
  });

  it('prints plain progress lines when stderr is not a terminal', async () => {
    origin.addFault({ match: /\.ts$/, latencyMs: 400 });
    try {
      const out = path.join(tempDir(), 'slow.mp4');
      const run = gabe(['download', `${origin.url}/m/${master.variants[0]!.uri}`, '-o', out, '-n', '1']);
      assert.equal(await run.exit, 0, run.output());
      assert.match(run.stderr(), /\d+\.\d% .*segments/);
      assert.doesNotMatch(run.stderr(), /\u001b\[/, 'no terminal escape codes in a pipe');
    } finally {
      origin.reset();
    }
  });

  it('sends -H headers with every fetch and keeps only the audio with --audio-only', async () => {
    origin.addFault({
      match: (r) => r.path.startsWith('/m/') && r.headers['referer'] !== 'https://r.example/',
      status: 403,
    });
    try {
      const out = path.join(tempDir(), 'sound.m4a');
      const url = `${origin.url}/m/${master.variants[0]!.uri}`;
      const refused = gabe(['download', url, '-o', out, '--audio-only']);
      assert.notEqual(await refused.exit, 0);
      assert.match(refused.stderr(), /403/);
      const run = gabe(['download', url, '-o', out, '--audio-only', '-H', 'Referer: https://r.example/']);
      assert.equal(await run.exit, 0, run.output());
      assert.equal(run.stdout().trim(), out);
      const streams = (await ffprobeJson(out)).streams.map((s) => s.codec_type);
      assert.deepEqual(streams, ['audio']);
    } finally {
      origin.reset();
    }
  });

  it('refuses a malformed header or key before fetching anything', async () => {
    const url = `${origin.url}/m/${master.masterName}`;
    for (const args of [
      ['-H', 'no colon here'],
      ['--key', 'abc'],
    ]) {
      const run = gabe(['download', url, ...args]);
      assert.notEqual(await run.exit, 0);
      assert.match(run.stderr(), /Name: value|32 hexadecimal digits/);
    }
    assert.equal(origin.countRequests(/^\/m\//), 0);
  });

  it('exits non-zero with the error message on failure', async () => {
    const run = gabe(['download', `${origin.url}/m/missing.m3u8`]);
    assert.equal(await run.exit, 1);
    assert.match(run.stderr(), /HTTP 404 .*GABE_ERR_HTTP_STATUS/);
    const bad = gabe(['download', `${origin.url}/m/${master.masterName}`, '--resolution', 'huge']);
    assert.notEqual(await bad.exit, 0);
    assert.match(bad.stderr(), /invalid resolution/);
  });

  it('lists variants as a table and as the documented JSON', async () => {
    const table = gabe(['info', `${origin.url}/m/${master.masterName}`]);
    assert.equal(await table.exit, 0, table.output());
    for (const v of master.variants) assert.match(table.stdout(), new RegExp(v.resolution));
    const run = gabe(['info', '--json', `${origin.url}/m/${master.masterName}`]);
    assert.equal(await run.exit, 0, run.output());
    const json = JSON.parse(run.stdout());
    assert.equal(json.kind, 'master');
    assert.deepEqual(
      json.variants.map((v: { resolution: string }) => v.resolution),
      master.variants.map((v) => v.resolution),
    );
    for (const v of json.variants) {
      for (const k of [
        'uri',
        'bandwidth',
        'average_bandwidth',
        'resolution',
        'codecs',
        'frame_rate',
        'audio',
        'subtitles',
      ]) {
        assert.ok(k in v, k);
      }
      assert.equal(v.resolved_uri, `${origin.url}/m/${v.uri}`);
    }
    const media = JSON.parse(
      (await runOk(['info', '--json', `${origin.url}/m/${master.variants[0]!.uri}`])).trim(),
    );
    assert.equal(media.kind, 'media');
    assert.equal(media.segment_count, master.variants[0]!.segmentCount);
    for (const k of ['target_duration', 'media_sequence', 'endlist', 'playlist_type', 'total_duration'])
      assert.ok(k in media, k);
    assert.deepEqual(
      Object.keys(media.segments[0]).filter((k) =>
        ['uri', 'duration', 'msn', 'byterange', 'discontinuity', 'key', 'map'].includes(k),
      ).length,
      7,
    );
  });

  it('info --json on a corpus file with --base-url prints exactly the parser model the conformance test checks', {
    skip: existsSync(CORPUS) ? false : 'shared conformance corpus not present',
  }, async () => {
    const manifest = JSON.parse(readFileSync(path.join(CORPUS, 'manifest.json'), 'utf8')) as {
      file: string;
      base_uri?: string;
    }[];
    const samples = manifest.filter((e) => e.base_uri).slice(0, 3);
    assert.ok(samples.length > 0);
    for (const entry of samples) {
      const file = path.join(CORPUS, entry.file);
      const out = await runOk(['info', '--json', file, '--base-url', entry.base_uri!]);
      // Plus `format`, which says HLS from MPEG-DASH.
      const expected = {
        format: 'hls',
        ...toInfoJson(parsePlaylist(readFileSync(file, 'utf8'), entry.base_uri), true),
      };
      assert.deepEqual(JSON.parse(out), JSON.parse(JSON.stringify(expected)), entry.file);
    }
  });
});

async function runOk(args: string[]): Promise<string> {
  const run = gabe(args);
  assert.equal(await run.exit, 0, run.output());
  return run.stdout();
}
