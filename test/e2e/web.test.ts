/**
 * The web page, end to end in a real browser (Debian's Chromium via playwright-core): the real service
 * listening on a port, a real origin serving ffmpeg-made fixtures, real downloads. What a person does
 * is what the test does: paste a URL, probe, pick a quality, download, follow the job, fetch the file.
 *
 * Screenshots: set GABE_WEB_SCREENSHOTS=/some/dir to keep the phone and desktop screenshots for a look.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { browserMissing, launchBrowser } from '../helpers/browser.js';
import {
  ffprobeJson,
  type HlsMasterFixture,
  type Mp4Fixture,
  makeHlsMaster,
  makeMp4,
} from '../helpers/fixtures.js';
import { type Origin, startOrigin } from '../helpers/origin.js';
import { closeAllServices, startTestService, type TestService } from '../helpers/service.js';
import { tempDir } from '../helpers/tmp.js';

const API_KEY = 'k'.repeat(20);

/**
 * The little of the page's globals that page-side callbacks use. The project's tsconfig has no DOM lib
 * (it is Node code), and a `/// <reference lib="dom" />` here would leak DOM globals into every file.
 */
type PageGlobals = {
  document: { documentElement: { scrollWidth: number }; activeElement: { id: string } | null };
  innerWidth: number;
  getComputedStyle(el: unknown): { outlineStyle: string };
};
const PHONE = { width: 375, height: 812 };
const DESKTOP = { width: 1280, height: 900 };
const JOB_TIMEOUT = 60_000;

describe('web page (Chromium)', () => {
  let origin: Origin;
  let master: HlsMasterFixture;
  let mp4: Mp4Fixture;
  let browser: Browser;
  let context: BrowserContext | undefined;
  /** Uncaught exceptions and console errors of the page, other than refused requests (401s are expected). */
  let pageErrors: string[] = [];
  const shotsDir = process.env.GABE_WEB_SCREENSHOTS || tempDir('gabe-web-shots-');

  before(async () => {
    const missing = browserMissing();
    if (missing) throw new Error(missing);
    [master, mp4] = await Promise.all([makeHlsMaster(), makeMp4({ seconds: 2 })]);
    origin = await startOrigin();
    origin.serveDir('/m/', master.dir);
    origin.addFile('/clip.mp4', mp4.file);
    browser = await launchBrowser();
    mkdirSync(shotsDir, { recursive: true });
  });

  afterEach(async () => {
    // The page first: its open event stream would otherwise hold the service's close() up.
    await context?.close();
    context = undefined;
    await closeAllServices();
    origin.reset();
  });

  after(async () => {
    await browser?.close();
    await closeAllServices();
    await origin?.close();
  });

  const masterUrl = () => `${origin.url}/m/${master.masterName}`;
  const middle = () => master.variants[1]!;

  async function openPage(svc: TestService, viewport = DESKTOP): Promise<Page> {
    context = await browser.newContext({ viewport });
    const page = await context.newPage();
    pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) {
        pageErrors.push(`console: ${msg.text()}`);
      }
    });
    await page.goto(`${svc.url}/`);
    return page;
  }

  /** The id of the focused element ('' for none); never waits, unlike a `:focus` locator. */
  const focusedId = (page: Page) =>
    page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.id ?? '');
  const jobCard = (page: Page) => page.locator('li.job').first();

  async function waitForStatus(card: Locator, status: string): Promise<void> {
    await card.and(card.page().locator(`[data-status="${status}"]`)).waitFor({ timeout: JOB_TIMEOUT });
  }

  /** Fetches the card's "Download file" link from Node and checks it is the right MP4. */
  async function checkDownloadLink(svc: TestService, card: Locator, resolution: string) {
    const link = card.getByRole('link', { name: /Download file/ });
    const href = await link.getAttribute('href');
    assert.ok(href, 'the link has an href');
    const res = await fetch(new URL(href, svc.url));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition') ?? '', /attachment/);
    const bytes = Buffer.from(await res.arrayBuffer());
    const jobId = await card.getAttribute('data-job-id');
    const job = svc.store.get(jobId!);
    assert.equal(bytes.length, job?.result?.file_size_bytes, 'the link serves the whole file');
    const saved = path.join(tempDir('gabe-web-dl-'), 'download.mp4');
    writeFileSync(saved, bytes);
    const probe = await ffprobeJson(saved);
    assert.match(probe.format.format_name, /mp4/);
    const video = probe.streams.find((s) => s.codec_type === 'video');
    assert.equal(`${video?.width}x${video?.height}`, resolution, 'the chosen quality');
    return href;
  }

  /** The page says "Live" once its EventSource on GET /events is open. */
  async function waitForLive(page: Page) {
    await page
      .locator('#live-status[data-live="on"]')
      .waitFor({ timeout: 5_000 })
      .catch(() => assert.fail('live updates (EventSource on GET /events) did not connect'));
  }

  /** Fails when the page is wider than the viewport (sideways scrolling on a phone). */
  async function assertNoHorizontalScroll(page: Page) {
    const { scroll, inner } = await page.evaluate(() => {
      const g = globalThis as unknown as PageGlobals;
      return { scroll: g.document.documentElement.scrollWidth, inner: g.innerWidth };
    });
    assert.ok(scroll <= inner, `page is ${scroll} px wide in a ${inner} px viewport`);
  }

  it('probes a master playlist, downloads the chosen quality with live progress, and serves the file', async () => {
    const svc = await startTestService({}, { listen: true });
    // Slow the chosen rendition's segments a little, so the job is seen PROCESSING through the event
    // stream (the POST answer only ever says PENDING) before it completes.
    origin.addFault({ match: /\/m\/v1\/seg_\d+\.ts$/, throttleBytesPerSec: 150_000 });
    const page = await openPage(svc);
    await page.getByText('No downloads yet.').waitFor();
    await waitForLive(page);

    await page.getByLabel('Video or playlist URL').fill(masterUrl());
    await page.getByRole('button', { name: 'Probe' }).click();
    const quality = page.getByRole('group', { name: 'Quality' });
    await quality.waitFor();
    const radios = quality.getByRole('radio');
    assert.equal(await radios.count(), 1 + master.variants.length, 'Auto + one per variant');
    assert.equal(await quality.getByRole('radio', { name: 'Auto (best)' }).isChecked(), true);
    for (const v of master.variants) {
      const label = page.locator('label.choice', { hasText: v.resolution });
      assert.match((await label.textContent()) ?? '', /Mbit\/s/, `${v.resolution} shows its bit rate`);
      assert.match((await label.textContent()) ?? '', /about [\d.]+ (KB|MB)/, `${v.resolution} shows a size`);
    }
    assert.match((await page.locator('.facts').textContent()) ?? '', /HLS playlist with several qualities/);
    assert.match((await page.locator('#form-msg').textContent()) ?? '', /Found 3 qualities/);

    await quality.getByRole('radio', { name: new RegExp(middle().resolution) }).check();
    await page.getByLabel('File name').fill('middle quality');
    await page.getByRole('button', { name: 'Download', exact: true }).click();

    const card = jobCard(page);
    await waitForStatus(card, 'PROCESSING');
    await card.locator('.job-stats', { hasText: /\d+\/\d+ segments/ }).waitFor();
    await card.screenshot({ path: path.join(shotsDir, 'desktop-progress.png') });
    await waitForStatus(card, 'COMPLETED');
    assert.equal(await card.locator('.badge').textContent(), 'Completed');
    assert.equal(await card.locator('.job-name').textContent(), 'middle quality');
    const progress = card.getByRole('progressbar', { name: 'Progress of middle quality' });
    assert.equal(await progress.getAttribute('value'), '100');
    assert.equal(await card.getByRole('button', { name: 'Cancel middle quality' }).count(), 0);
    assert.equal(await card.getByRole('button', { name: 'Delete middle quality' }).count(), 1);

    const href = await checkDownloadLink(svc, card, middle().resolution);
    // And from the page itself, as the browser would follow the link.
    const inPage = await page.evaluate(async (h) => {
      const r = await fetch(h);
      return { status: r.status, size: (await r.arrayBuffer()).byteLength };
    }, href);
    assert.equal(inPage.status, 200);
    assert.ok(inPage.size > 1000);

    // Readable on a phone and on a desktop: no sideways scrolling, and screenshots to look at.
    await page.screenshot({ path: path.join(shotsDir, 'desktop.png'), fullPage: true });
    await page.setViewportSize(PHONE);
    await assertNoHorizontalScroll(page);
    await page.screenshot({ path: path.join(shotsDir, 'phone.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });

  it('asks for the API key on a 401, keeps it, and downloads with it', async () => {
    const svc = await startTestService({ api_keys: [API_KEY] }, { listen: true });
    const page = await openPage(svc, PHONE);

    // The page loads without a key (web assets are public); its first API call says a key is needed.
    const settingsMsg = page.locator('#settings-msg');
    await settingsMsg.getByText(/needs an API key/).waitFor();
    const keyField = page.getByLabel('API key');
    assert.equal(await keyField.isVisible(), true, 'the settings open by themselves');
    assert.equal(await keyField.getAttribute('type'), 'password');
    await assertNoHorizontalScroll(page);
    await page.screenshot({ path: path.join(shotsDir, 'phone-key-prompt.png'), fullPage: true });

    // Trying anyway: the same message, and the key field gets the focus.
    await page.getByLabel('Video or playlist URL').fill(masterUrl());
    await page.getByRole('button', { name: 'Download', exact: true }).click();
    await page
      .locator('#form-msg')
      .getByText(/needs an API key/)
      .waitFor();
    assert.equal(await focusedId(page), 'api-key');

    // A wrong key is refused in plain words.
    await keyField.fill('not-the-right-key-000');
    await page.getByRole('button', { name: 'Save' }).click();
    await settingsMsg.getByText(/saved API key was refused/).waitFor();

    await keyField.fill(API_KEY);
    await page.getByRole('button', { name: 'Save' }).click();
    await settingsMsg.getByText('Saved. The key works.').waitFor();
    const stored = (await context!.storageState()).origins.flatMap((o) => o.localStorage);
    assert.deepEqual(stored, [{ name: 'gabe.apiKey', value: API_KEY }], 'the key is kept in the browser');
    await waitForLive(page); // the event stream too, with the key in its URL

    // Download without a probe first: the page probes, then starts the best quality.
    await page.getByRole('button', { name: 'Download', exact: true }).click();
    const card = jobCard(page);
    await waitForStatus(card, 'COMPLETED');
    const href = await checkDownloadLink(svc, card, master.variants.at(-1)!.resolution);
    assert.match(href, new RegExp(`[?&]api_key=${API_KEY}`), 'links carry the key the browser cannot send');
    const anonymous = new URL(href, svc.url);
    anonymous.searchParams.delete('api_key');
    assert.equal((await fetch(anonymous)).status, 401, 'the file is not public');

    // A reload remembers the key: the list loads with the finished job, no prompt.
    await page.reload();
    await waitForStatus(jobCard(page), 'COMPLETED');
    assert.equal(await page.getByLabel('API key').inputValue(), API_KEY);
    assert.equal((await settingsMsg.textContent()) ?? '', '');
    assert.deepEqual(pageErrors, []);
  });

  it('works with the keyboard alone: Tab to the URL, Enter probes, Enter downloads', async () => {
    const svc = await startTestService({}, { listen: true });
    const page = await openPage(svc);

    // Tab from the top of the page to the URL field (a skip link and the settings come first).
    let tabs = 0;
    while ((await focusedId(page)) !== 'url') {
      assert.ok(++tabs <= 5, 'the URL field is reached within a few Tab presses');
      await page.keyboard.press('Tab');
    }
    await page.keyboard.type(masterUrl());
    await page.keyboard.press('Enter');
    await page.getByRole('group', { name: 'Quality' }).waitFor();
    assert.equal(await focusedId(page), 'url', 'focus stays in the URL field');

    // Enter again downloads the probed URL with the default (best) quality.
    await page.keyboard.press('Enter');
    await page.locator('li.job').first().waitFor();
    await waitForStatus(jobCard(page), 'COMPLETED');
    const best = master.variants.at(-1)!;
    assert.match(
      (await jobCard(page).locator('.job-stats').textContent()) ?? '',
      new RegExp(best.resolution),
    );

    // Now choose a quality: Tab past Probe into the radio group, arrows to the middle variant (the list
    // is best first), Tab to the file name, type, Enter submits.
    await page.keyboard.press('Tab'); // Probe
    assert.equal(await focusedId(page), 'probe-btn');
    const outline = await page
      .locator(':focus')
      .evaluate((el) => (globalThis as unknown as PageGlobals).getComputedStyle(el).outlineStyle);
    assert.notEqual(outline, 'none', 'keyboard focus is visible');
    await page.keyboard.press('Tab'); // the checked radio: Auto (best)
    assert.equal(await focusedId(page), 'variant-auto');
    await page.keyboard.press('ArrowDown'); // best
    await page.keyboard.press('ArrowDown'); // middle
    const checked = page.locator('input[name="quality"]:checked');
    assert.equal(await checked.inputValue(), middle().resolution);
    await page.keyboard.press('Tab');
    assert.equal(await focusedId(page), 'video-name');
    await page.keyboard.type('keyboard pick');
    await page.keyboard.press('Enter');

    const card = page.locator('li.job', { hasText: 'keyboard pick' });
    await waitForStatus(card, 'COMPLETED');
    await checkDownloadLink(svc, card, middle().resolution);

    // The finished job's actions work from the keyboard too. Delete removes the file on the server, so
    // the page asks first: accept.
    page.once('dialog', (d) => void d.accept());
    await card.getByRole('button', { name: 'Delete keyboard pick' }).focus();
    await page.keyboard.press('Enter');
    await card.waitFor({ state: 'detached' });
    assert.equal(await focusedId(page), 'jobs-h', 'focus lands on the list');
    assert.deepEqual(pageErrors, []);
  });

  it('downloads a direct MP4 URL and shows its facts; errors come in plain words', async () => {
    const svc = await startTestService({}, { listen: true });
    const page = await openPage(svc, PHONE);

    await page.getByLabel('Video or playlist URL').fill(`${origin.url}/clip.mp4`);
    await page.getByRole('button', { name: 'Probe' }).click();
    const facts = page.locator('.facts');
    await facts.getByText('MP4 file').waitFor();
    assert.match((await facts.textContent()) ?? '', /Resumable\s*yes/);
    assert.equal(await page.getByRole('group', { name: 'Quality' }).count(), 0);
    await page.getByRole('button', { name: 'Download', exact: true }).click();
    const card = jobCard(page);
    await waitForStatus(card, 'COMPLETED');
    await checkDownloadLink(svc, card, `${mp4.width}x${mp4.height}`);

    // A playlist URL that returns something else: the probe says so in a sentence, not a code.
    origin.route('/bad.m3u8', {
      body: 'hello, not a playlist',
      contentType: 'application/vnd.apple.mpegurl',
    });
    await page.getByLabel('Video or playlist URL').fill(`${origin.url}/bad.m3u8`);
    await page.getByRole('button', { name: 'Probe' }).click();
    const msg = page.locator('#form-msg[data-kind="error"]');
    await msg.waitFor();
    assert.match((await msg.textContent()) ?? '', /^That URL did not return an HLS playlist\./);
    assert.doesNotMatch((await msg.textContent()) ?? '', /GABE_ERR_/, 'no raw error codes');
    assert.equal(await page.locator('#probe-result').isHidden(), true);

    // A job that fails (started through the API, as another client would): its card explains why.
    origin.route('/page.html', { body: '<!doctype html><p>hello</p>', contentType: 'text/html' });
    const res = await svc.app.inject({
      method: 'POST',
      url: '/download/mp4',
      payload: { url: `${origin.url}/page.html`, video_name: 'not a video' },
    });
    assert.equal(res.statusCode, 200);
    const failed = page.locator('li.job', { hasText: 'not a video' });
    await waitForStatus(failed, 'FAILED');
    assert.equal(await failed.locator('.badge').textContent(), 'Failed');
    assert.match(
      (await failed.locator('.job-error').textContent()) ?? '',
      /^That URL did not return a video file\./,
    );
    assert.equal(await failed.getByRole('link', { name: /Download file/ }).count(), 0);
    await assertNoHorizontalScroll(page);
    await page.screenshot({ path: path.join(shotsDir, 'phone-mp4-error.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });

  it('shows the poster frame of a finished job that has one, and none for a job without', async () => {
    const svc = await startTestService({}, { listen: true });
    const page = await openPage(svc, PHONE);
    await waitForLive(page);
    const submit = async (body: Record<string, unknown>) => {
      const res = await fetch(`${svc.url}/download/mp4`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: `${origin.url}/clip.mp4`, ...body }),
      });
      assert.equal(res.status, 200);
      return ((await res.json()) as { job_id: string }).job_id;
    };
    const plain = await submit({ video_name: 'no poster' });
    const withPoster = await submit({ video_name: 'with poster', thumbnail: true });
    const card = (id: string) => page.locator(`li.job[data-job-id="${id}"]`);
    await waitForStatus(card(plain), 'COMPLETED');
    await waitForStatus(card(withPoster), 'COMPLETED');
    const poster = card(withPoster).getByRole('img', { name: 'Poster frame of with poster' });
    await poster.waitFor({ timeout: 5_000 });
    // Loaded, not a broken image: the route served a JPEG of the video's size.
    const width = await poster.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth);
    assert.equal(width, mp4.width);
    assert.equal(await card(plain).locator('img.job-poster').isVisible(), false);
    await assertNoHorizontalScroll(page);
    await page.screenshot({ path: path.join(shotsDir, 'phone-poster.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });
});
