/**
 * The HTTP server: `Deno.serve` around a {@linkcode Handler} at the address it is given,
 * held with `await using` and stopped by an `AbortSignal` or disposal.
 *
 * @example
 * ```ts
 * import { HttpServer } from "./server.ts";
 * import { createHandler } from "./handler.ts";
 * import type { PipelineStatus } from "../core/status.ts";
 *
 * async function serve(status: () => PipelineStatus, signal: AbortSignal): Promise<void> {
 *   await using server = new HttpServer(createHandler({ status }), {
 *     hostname: "127.0.0.1",
 *     port: 8080,
 *     signal,
 *   });
 *   console.log(server.url); // http://127.0.0.1:8080
 * }
 * ```
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Handler } from "./handler.ts";

/**
 * Options of {@linkcode HttpServer}. The address has no default here: the pipeline file's
 * (`http.host`, `http.port`, local only by default) is the one.
 */
export interface HttpServerOptions {
  /** The address to listen on. */
  readonly hostname: string;
  /** The port; 0 picks a free port (see {@linkcode HttpServer.addr}). */
  readonly port: number;
  /** Stops the server when aborted. */
  readonly signal?: AbortSignal;
  /** Says where the server listens, and when it stops. */
  readonly logger?: Logger;
}

function hostPort(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/** A listening HTTP server; dispose it (or abort its signal) to stop it. */
export class HttpServer implements AsyncDisposable {
  /** The address the server listens on (the real port when 0 was asked). */
  readonly addr: Deno.NetAddr;
  /** `http://host:port`, for logs and clients. */
  readonly url: string;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #logger: Logger | undefined;
  #signal: AbortSignal | undefined;
  #onAbort = () => void this.shutdown();
  #stopping: Promise<void> | undefined;

  /**
   * Starts listening at once.
   *
   * @throws {Deno.errors.AddrInUse} "Cannot listen on <host:port>: the address is already
   * in use" when another process holds the port.
   * @throws {Error} "Cannot listen on <host:port>: <reason>" for other failures (the
   * original error as `cause`), or the signal's reason when it is already aborted.
   */
  constructor(handler: Handler, options: HttpServerOptions) {
    options.signal?.throwIfAborted();
    const { hostname, port } = options;
    this.#logger = options.logger;
    const logger = options.logger;
    try {
      this.#server = Deno.serve({
        hostname,
        port,
        onListen: () => {},
        onError: (e) => {
          logger?.error("HTTP handler failed", { error: e });
          return new Response("internal error", { status: 500 });
        },
      }, handler);
    } catch (e) {
      const where = hostPort(hostname, port);
      if (e instanceof Deno.errors.AddrInUse) {
        throw new Deno.errors.AddrInUse(
          `Cannot listen on ${where}: the address is already in use (another instance, or choose another http port)`,
          { cause: e },
        );
      }
      throw new Error(`Cannot listen on ${where}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
    this.addr = this.#server.addr;
    this.url = `http://${hostPort(this.addr.hostname, this.addr.port)}`;
    this.finished = this.#server.finished;
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    logger?.info("HTTP listening", { url: this.url });
  }

  /** Stops accepting connections and waits for requests in progress. Idempotent. */
  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#signal?.removeEventListener("abort", this.#onAbort);
      await this.#server.shutdown();
      await this.#server.finished;
      this.#logger?.info("HTTP stopped", { url: this.url });
    })();
    return this.#stopping;
  }

  /** Same as {@linkcode shutdown}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
