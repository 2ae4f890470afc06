/**
 * The sha256 of some bytes as lowercase hex, as `sha256sum` prints it: the one digest of
 * the project (teacher downloads, model versions, int8 graph checks).
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./sha256.ts";
 *
 * const hex = await sha256Hex(new TextEncoder().encode("abc"));
 * // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 * ```
 *
 * @module
 */

/** The lowercase hex sha256 of some bytes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
