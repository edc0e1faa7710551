/**
 * Which ResultStore a process uses: S3 when config storage.s3.bucket is set, output_path otherwise.
 */
import type { Config } from '../service/config.js';
import type { Logger } from '../service/log.js';
import { LocalResults } from './local-results.js';
import type { ResultStore } from './results.js';

export async function createResultStore(config: Config, log: Logger): Promise<ResultStore> {
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
  // Loaded only here: the AWS SDK adds ~8 MB to every process that imports it.
  const { S3Results } = await import('./s3-results.js');
  return new S3Results(s3, config.output_path);
}
