/**
 * How a URL with credentials is shown: wherever a URL leaves the service (API answers, SSE, webhooks,
 * log lines, error messages, CLI output), its `user:pass@` reads `***:***@`. Masked rather than
 * dropped: the reader still sees that the job was given credentials (which explains why it was let
 * in, or why a 401 is not about missing ones), and the user name goes too, since it is often the
 * secret itself (`https://TOKEN@host/`). Only what is shown is redacted: the stored job keeps its real
 * URL, so a job resumed after a restart still authenticates.
 */

const MASK = '***:***@';

// `scheme://userinfo@` in free text. The userinfo runs up to the LAST `@` before the authority ends
// (at `/`, `?`, `#` or white space), as WHATWG URL reads it: `http://a@b@host/` has user `a@b`.
const USERINFO_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;

/**
 * `text` with the credentials of every URL in it masked. A whole URL in a spelling the pattern does
 * not see (`http:user:pass@host`, backslashes, tabs: WHATWG URL accepts them all for http and https)
 * is parsed, and shown in its parsed form with its credentials masked.
 */
export function redactCredentials(text: string): string {
  if (!text.includes('@')) return text;
  const masked = text.replace(USERINFO_IN_TEXT, `$1${MASK}`);
  if (masked !== text) return masked;
  try {
    const u = new URL(text);
    if (u.username || u.password) {
      u.username = '';
      u.password = '';
      return u.href.replace('//', `//${MASK}`);
    }
  } catch {
    // not a URL: nothing of a URL's credentials in it
  }
  return text;
}
