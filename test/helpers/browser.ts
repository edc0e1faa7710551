/**
 * A real browser for end-to-end tests of the web page: Debian's Chromium driven by playwright-core.
 *
 * Why Debian's build and not Playwright's: playwright-core never downloads browsers (the `playwright`
 * package would, from a CDN this machine cannot reach); `.ci/run` installs the `chromium` package.
 * Override the binary with GABE_TEST_CHROMIUM.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.GABE_TEST_CHROMIUM || '/usr/bin/chromium';

/** Why the browser tests cannot run, or null when they can; tests skip with this reason. */
export function browserMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (apt-get install chromium, as .ci/run does)`;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start. The rest keep Chromium
    // from phoning home (component updates, sync, QUIC probes): there is no internet here, and those
    // attempts only add noise and start-up time.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
