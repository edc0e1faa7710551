import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The package's folder: src/ (sources), dist/ (the build, bundle chunks included) sit one level below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** package.json's version, read once. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
