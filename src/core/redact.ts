/**
 * Credential redaction for every log line and message that may hold a camera URL or a
 * secret.
 *
 * @module
 */

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]+)(?::[^\s/@]*)?@/gi;

/**
 * Replaces the user and password of every URL in a text with `***`:
 * `rtsp://admin:hunter2@10.0.0.5/s1` becomes `rtsp://***:***@10.0.0.5/s1`.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_CREDENTIALS, "$1***:***@");
  for (const s of secrets) {
    if (s.length >= 3) out = out.split(s).join("***");
  }
  return out;
}
