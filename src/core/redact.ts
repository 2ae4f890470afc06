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
  // Listed secrets first, longest first: a password holding `@` or `:` would otherwise be
  // cut by the URL rule and leak in part.
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length >= 3) out = out.split(s).join("***");
  }
  return out.replace(URL_CREDENTIALS, "$1***:***@");
}

/**
 * The password of a URL with credentials (`scheme://user:password@host...`), raw and
 * percent-decoded, to pass to {@linkcode redact} for text that may quote it outside the
 * URL. Empty when the text has no password.
 *
 * @example
 * ```ts
 * urlSecrets("rtsp://admin:p%40ss@cam/1"); // ["p%40ss", "p@ss"]
 * ```
 */
export function urlSecrets(text: string): string[] {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:([^/@\s]*)@/i.exec(text);
  const password = m?.[1];
  if (!password) return [];
  const out = new Set([password]);
  try {
    out.add(decodeURIComponent(password));
  } catch {
    // not valid percent-encoding: the raw form is enough
  }
  return [...out];
}
