/**
 * The TLS files of a broker connection, read once (when the publisher is made) so that a
 * missing or unreadable file fails the start with its name, not a later reconnect.
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";

/** TLS files, as paths. */
export interface TlsFileOptions {
  /** CA certificate(s) (PEM) that the broker's certificate must chain to. */
  readonly ca?: string;
  /** Client certificate (PEM), for brokers that require one. */
  readonly cert?: string;
  /** The client certificate's private key (PEM). */
  readonly key?: string;
  /** Check the broker's certificate (a pipeline's `mqtt.tls.reject_unauthorized`). */
  readonly rejectUnauthorized: boolean;
}

/** The contents of {@linkcode TlsFileOptions}' files, as mqtt.js takes them. */
export interface TlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly rejectUnauthorized: boolean;
}

/**
 * Reads the files named in `tls`.
 *
 * @throws {Error} "Cannot read MQTT TLS <CA | certificate | key> file <path>: <reason>"
 * (the `cause` is the file system error).
 *
 * @example
 * ```ts
 * import { readTlsFiles } from "./tls_files.ts";
 *
 * function brokerCa() {
 *   return readTlsFiles({ ca: "/etc/ssl/broker-ca.pem", rejectUnauthorized: true });
 *   // { ca: "-----BEGIN CERTIFICATE-----...", rejectUnauthorized: true }
 * }
 * ```
 */
export function readTlsFiles(tls: TlsFileOptions): TlsFiles {
  return {
    ...(tls.ca !== undefined ? { ca: readFile("CA", tls.ca) } : {}),
    ...(tls.cert !== undefined ? { cert: readFile("certificate", tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: readFile("key", tls.key) } : {}),
    rejectUnauthorized: tls.rejectUnauthorized,
  };
}

function readFile(what: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    throw new Error(`Cannot read MQTT TLS ${what} file ${path}: ${errorMessage(e)}`, {
      cause: e,
    });
  }
}
