import { redactCredentials } from '../net/redact.js';
import { isGabeError } from '../service/errors.js';

/** Prints the error (credentials in URLs redacted) and exits with status 1. */
export function fail(err: unknown): never {
  const message = isGabeError(err) ? `${err.message} [${err.code}]` : String((err as Error)?.stack ?? err);
  process.stderr.write(`gabe: ${redactCredentials(message)}\n`);
  process.exit(1);
}
