/**
 * `s3://bucket/key`, the form job results carry. Apart from the SDK code in s3.ts, so that a process
 * which only looks at results (the API deciding how to serve a file) does not load the AWS SDK.
 */

/** `s3://bucket/key`, the form job results carry (the key as written, not percent-encoded, like the AWS CLI). */
export function formatS3Url(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

export function parseS3Url(url: string): { bucket: string; key: string } | null {
  const m = /^s3:\/\/([^/\s]+)\/(.+)$/s.exec(url);
  if (!m) return null;
  return { bucket: m[1]!, key: m[2]! };
}
