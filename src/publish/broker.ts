/**
 * The embedded MQTT broker: started when the pipeline names no broker, so that the
 * service works on a machine with nothing else installed. It is aedes on a `node:net`
 * server, in memory (retained messages and sessions do not survive a restart), without
 * authentication, speaking MQTT 3.1.1 (the publisher falls back to it by itself).
 *
 * @module
 */
import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";
import { createLogger, type Logger } from "../core/log.ts";

/** Options of {@linkcode EmbeddedBroker.start}. */
export interface EmbeddedBrokerOptions {
  /** Address to listen on (a pipeline's `mqtt.embedded.host`). */
  readonly host: string;
  /** Port; 0 picks a free one (a pipeline's `mqtt.embedded.port`). */
  readonly port: number;
  readonly logger?: Logger;
  /** Aborting it closes the broker. */
  readonly signal?: AbortSignal;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/**
 * An in-process MQTT broker.
 *
 * @example
 * ```ts
 * import { MqttPublisher, type MqttPublisherOptions } from "./publisher.ts";
 *
 * // `options`: a pipeline's resolved `mqtt` section, as `pipeline/pipeline.ts` passes it.
 * async function serve(options: MqttPublisherOptions, signal: AbortSignal) {
 *   await using broker = await EmbeddedBroker.start({ host: "127.0.0.1", port: 1883 });
 *   await using publisher = new MqttPublisher({
 *     ...options,
 *     url: broker.url,
 *     protocolVersion: broker.protocolVersion,
 *     signal,
 *   });
 *   await publisher.waitConnected({ signal });
 * }
 * ```
 */
export class EmbeddedBroker implements AsyncDisposable {
  /** The address it listens on. */
  readonly host: string;
  /** The port it listens on (the one picked when 0 was asked). */
  readonly port: number;
  /** The MQTT protocol version it speaks: 4 (3.1.1). */
  readonly protocolVersion = 4 as const;
  readonly #aedes: Aedes;
  readonly #server: Server;
  readonly #log: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.close();
  #closing: Promise<void> | undefined;

  private constructor(
    aedes: Aedes,
    server: Server,
    host: string,
    port: number,
    log: Logger,
    signal: AbortSignal | undefined,
  ) {
    this.#aedes = aedes;
    this.#server = server;
    this.host = host;
    this.port = port;
    this.#log = log;
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /**
   * Starts the broker and waits until it listens; logs where.
   *
   * @throws {Error} "Cannot start embedded MQTT broker on host:port: ..." when the address
   * is in use or cannot be bound.
   * @throws {DOMException} when `signal` is already aborted.
   */
  static async start(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    options.signal?.throwIfAborted();
    const { host, port } = options;
    const log = options.logger ?? createLogger({ scope: "mqtt-broker" });
    const aedes = await Aedes.createBroker();
    aedes.on("clientError", (client, error) => {
      log.debug("embedded broker client error", { client: client.id, error: error.message });
    });
    aedes.on("connectionError", (_client, error) => {
      log.debug("embedded broker connection error", { error: error.message });
    });
    const server = createServer(aedes.handle);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      await new Promise<void>((r) => aedes.close(() => r()));
      const reason = (e as { code?: string }).code === "EADDRINUSE"
        ? "the address is in use (is another broker running? set mqtt.url to use it)"
        : e instanceof Error
        ? e.message
        : String(e);
      throw new Error(`Cannot start embedded MQTT broker on ${host}:${port}: ${reason}`, {
        cause: e,
      });
    }
    server.on("error", (e) => log.error("embedded broker error", { error: e }));
    const address = server.address();
    const bound = typeof address === "object" && address !== null ? address.port : port;
    const broker = new EmbeddedBroker(aedes, server, host, bound, log, options.signal);
    log.info("started the embedded MQTT broker (aedes, MQTT 3.1.1, in memory, no auth)", {
      url: broker.url,
    });
    if (!LOOPBACK.has(host)) {
      log.warn("the embedded MQTT broker accepts anyone on the network: it has no authentication", {
        host,
      });
    }
    return broker;
  }

  /** `mqtt://host:port`. */
  get url(): string {
    return `mqtt://${this.host.includes(":") ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /** Clients connected now. */
  get clients(): number {
    return this.#aedes.connectedClients;
  }

  /** Disconnects every client and stops listening. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#signal?.removeEventListener("abort", this.#onAbort);
      await new Promise<void>((r) => this.#aedes.close(() => r()));
      await new Promise<void>((r) => this.#server.close(() => r()));
      this.#log.info("stopped the embedded MQTT broker", { url: this.url });
    })();
    return this.#closing;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
