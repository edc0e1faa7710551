/**
 * Which ResultStore a process uses: S3 when config storage.s3.bucket is set, output_path otherwise.
 */
import type { Config } from '../service/config.js';
import type { Logger } from '../service/log.js';
import { LocalResults } from './local-results.js';
import type { ResultStore } from './results.js';
import { S3Results } from './s3-results.js';

export function createResultStore(config: Config, log: Logger): ResultStore {
  const s3 = config.storage.s3;
  if (!s3.bucket) return new LocalResults(config.output_path);
  log.info(
    {
      bucket: s3.bucket,
      prefix: s3.prefix,
      endpoint: s3.endpoint ?? `AWS ${s3.region}`,
      presign: s3.presign,
    },
    'finished files go to S3',
  );
  return new S3Results(s3, config.output_path);
}
