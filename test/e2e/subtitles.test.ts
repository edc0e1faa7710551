import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { cleanupOnce } from '../../src/jobs/cleanup.js';
import type { Job } from '../../src/jobs/types.js';
import type { MasterPlaylist, Variant } from '../../src/playlist/model.js';
import { parsePlaylist } from '../../src/playlist/parser.js';
import { selectSubtitleRenditions } from '../../src/playlist/subtitles.js';
import { createLogger } from '../../src/service/log.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { type HlsSubtitlesFixture, makeHlsSubtitles } from '../helpers/subtitles.js';

function master(...lines: string[]): MasterPlaylist {
  const p = parsePlaylist(['#EXTM3U', ...lines].join('\n'), 'https://cdn.example/show/master.m3u8');
  assert.equal(p.kind, 'master');
  return p as MasterPlaylist;
}

/** An EXT-X-MEDIA subtitle line; `extra` is appended as written (e.g. `,DEFAULT=YES`). */
const sub = (name: string, lang: string | null, uri: string | null, extra = '', group = 'subs'): string =>
  `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="${group}",NAME="${name}"` +
  `${lang === null ? '' : `,LANGUAGE="${lang}"`}${uri === null ? '' : `,URI="${uri}"`}${extra}`;
const variant = (group: string | null, uri = 'v.m3u8') =>
  `#EXT-X-STREAM-INF:BANDWIDTH=1000000${group === null ? '' : `,SUBTITLES="${group}"`}\n${uri}`;

const first = (m: MasterPlaylist): Variant => m.variants[0]!;
const names = (m: MasterPlaylist, languages?: string[] | null, v = first(m)) =>
  selectSubtitleRenditions(m, v, languages).map((r) => r.name);

describe('selectSubtitleRenditions', () => {
  test('is empty for a variant without a SUBTITLES group', () => {
    const m = master(sub('English', 'en', 'en.m3u8'), variant(null));
    assert.deepEqual(names(m), []);
  });

  test("takes only SUBTITLES renditions of the variant's own group that have a URI", () => {
    const m = master(
      sub('English', 'en', 'en.m3u8'),
      sub('No URI', 'de', null),
      sub('Other group', 'it', 'it.m3u8', '', 'other'),
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="subs",NAME="Audio",LANGUAGE="en",URI="a.m3u8"',
      '#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="subs",NAME="CC",INSTREAM-ID="CC1"',
      variant('subs'),
      variant('other', 'w.m3u8'),
    );
    assert.deepEqual(names(m), ['English']);
    assert.deepEqual(names(m, null, m.variants[1]), ['Other group']);
  });

  test("without languages: all of them, the DEFAULT one's language first, then playlist order", () => {
    const m = master(
      sub('Français', 'fr', 'fr.m3u8'),
      sub('Deutsch', 'de', 'de.m3u8'),
      sub('English', 'en', 'en.m3u8', ',DEFAULT=YES,AUTOSELECT=YES'),
      sub('English (UK)', 'en-GB', 'en-gb.m3u8'),
      variant('subs'),
    );
    assert.deepEqual(names(m), ['English', 'English (UK)', 'Français', 'Deutsch']);
    assert.deepEqual(names(m, []), names(m), 'an empty list means no filter');
  });

  test('filters by language case-insensitively and by primary subtag, in the order asked', () => {
    const m = master(
      sub('English (US)', 'en-US', 'en-us.m3u8'),
      sub('Français', 'fr', 'fr.m3u8', ',DEFAULT=YES'),
      sub('Deutsch', 'de', 'de.m3u8'),
      sub('No language', null, 'x.m3u8'),
      variant('subs'),
    );
    assert.deepEqual(names(m, ['EN']), ['English (US)']);
    assert.deepEqual(names(m, ['de', 'en']), ['Deutsch', 'English (US)']);
    assert.deepEqual(names(m, ['fr-CA']), [], 'a more specific tag does not take a less specific one');
    assert.deepEqual(names(m, ['e']), [], 'a prefix that is not a whole subtag matches nothing');
    assert.deepEqual(names(m, ['ja']), []);
  });

  test('puts FORCED renditions after the full ones of their language, and they stay marked forced', () => {
    const m = master(
      sub('English (forced)', 'en', 'en-forced.m3u8', ',FORCED=YES,DEFAULT=YES'),
      sub('Français (forcé)', 'fr', 'fr-forced.m3u8', ',FORCED=YES'),
      sub('English', 'en', 'en.m3u8'),
      sub('Français', 'fr', 'fr.m3u8'),
      variant('subs'),
    );
    const chosen = selectSubtitleRenditions(m, first(m));
    assert.deepEqual(
      chosen.map((r) => [r.name, r.forced]),
      [
        ['English', false],
        ['English (forced)', true],
        ['Français', false],
        ['Français (forcé)', true],
      ],
    );
    assert.deepEqual(names(m, ['fr']), ['Français', 'Français (forcé)']);
  });

  test('never returns the same URI twice, including URIs that resolve to the same URL', () => {
    const m = master(
      sub('English', 'en', 'subs/en.m3u8', ',DEFAULT=YES'),
      sub('English again', 'en', 'subs/en.m3u8'),
      sub('English, absolute', 'en', 'https://cdn.example/show/subs/en.m3u8'),
      sub(
        'English SDH',
        'en',
        'subs/en-sdh.m3u8',
        ',CHARACTERISTICS="public.accessibility.describes-music-and-sound"',
      ),
      variant('subs'),
    );
    assert.deepEqual(names(m), ['English', 'English SDH']);
  });

  test("picks the fixture master's renditions: English (DEFAULT) then French; French alone when asked", async () => {
    const fx = await makeHlsSubtitles();
    const m = parsePlaylist(await readFile(fx.master, 'utf8'));
    assert.equal(m.kind, 'master');
    const v = m.variants[0]!;
    assert.deepEqual(
      selectSubtitleRenditions(m, v).map((r) => r.uri),
      fx.subtitles.map((s) => s.uri),
    );
    assert.deepEqual(
      selectSubtitleRenditions(m, v, ['FR']).map((r) => [r.uri, r.language, r.default]),
      [['fr/index.m3u8', 'fr', false]],
    );
  });
});

describe('subtitle sidecars leave with their job', () => {
  let origin: Origin;
  let svc: TestService;
  let fx: HlsSubtitlesFixture;

  before(async () => {
    fx = await makeHlsSubtitles();
    origin = await startOrigin();
    origin.serveDir('/subs/', fx.dir);
    svc = await startTestService({ max_jobs_per_ip: 0, clean_jobs_after_days: 1 });
  });
  after(async () => {
    await closeAllServices();
    await origin.close();
  });

  /** A finished job with its MP4 and both .vtt sidecars on disk. */
  async function subtitledJob(name: string): Promise<Job> {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ url: `${origin.url}/subs/${fx.masterName}`, video_name: name }),
    });
    assert.equal(res.statusCode, 200, res.body);
    const job = await svc.waitFor(res.json().job_id, ['COMPLETED', 'FAILED']);
    assert.equal(job.status, 'COMPLETED', job.error ?? '');
    assert.equal(job.result!.subtitles!.length, 2);
    for (const file of filesOf(job)) assert.ok(existsSync(file), file);
    return job;
  }
  const filesOf = (job: Job) => [job.result!.output_path, ...job.result!.subtitles!.map((s) => s.path)];

  test('DELETE of a finished job removes its .vtt sidecars with the MP4', async () => {
    const job = await subtitledJob('deleted');
    const res = await svc.app.inject({ method: 'DELETE', url: `/job/${job.id}` });
    assert.equal(res.statusCode, 200);
    for (const file of filesOf(job)) assert.ok(!existsSync(file), `${file} is gone`);
  });

  test('the age cleanup removes its .vtt sidecars with the MP4', async () => {
    const job = await subtitledJob('aged');
    svc.store.db
      .prepare('UPDATE jobs SET completed_at = ? WHERE id = ?')
      .run(new Date(Date.now() - 2 * 86_400_000).toISOString(), job.id);
    const report = await cleanupOnce(svc.store, svc.results, svc.config, createLogger({ stdout: false }));
    assert.equal(report.jobs, 1);
    for (const file of filesOf(job)) assert.ok(!existsSync(file), `${file} is gone`);
  });
});
