/**
 * Commands in: the subscription to `<prefix>/+/set/+` and what happens to each message on
 * it. A command is parsed (`commands.ts`) and handed to a callback; malformed, unknown and
 * retained commands are logged, counted and ignored (a retained command would run again
 * on every reconnect).
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { type Command, parseCommand } from "./commands.ts";
import type { IncomingMessage, MqttSubscription } from "./connection.ts";
import type { Topics } from "./topics.ts";

/** Counts of the commands in. */
export interface CommandCounters {
  /** Commands parsed and handed to `onCommand`. */
  readonly received: number;
  /** Commands ignored: malformed, unknown or retained. */
  readonly rejected: number;
}

/** Options of {@linkcode CommandReceiver}. */
export interface CommandReceiverOptions {
  /** The topic tree whose `set/<command>` topics are listened to. */
  readonly topics: Topics;
  /** Receives each parsed command. What it throws is logged; the receiver goes on. */
  readonly onCommand: (command: Command) => void;
  readonly logger: Logger;
  /** Applied to error texts before they are logged (the connection's secrets). */
  readonly redact?: (text: string) => string;
}

/**
 * Turns messages on the command topics into {@linkcode Command}s. Give
 * {@linkcode CommandReceiver.subscription} to a connection's `subscribe()`.
 *
 * @example
 * ```ts
 * import { createLogger } from "../core/log.ts";
 * import type { MqttConnection } from "./connection.ts";
 * import { topics } from "./topics.ts";
 *
 * function listen(connection: MqttConnection) {
 *   const receiver = new CommandReceiver({
 *     topics: topics("efficientad"),
 *     onCommand: (command) => console.log(command.camera, command.command),
 *     logger: createLogger(),
 *   });
 *   connection.subscribe(receiver.subscription);
 * }
 * ```
 */
export class CommandReceiver {
  /** The subscription (QoS 1, no retained messages on subscribe over MQTT 5). */
  readonly subscription: MqttSubscription;
  readonly #topics: Topics;
  readonly #onCommand: (command: Command) => void;
  readonly #log: Logger;
  readonly #redact: (text: string) => string;
  #received = 0;
  #rejected = 0;

  constructor(options: CommandReceiverOptions) {
    this.#topics = options.topics;
    this.#onCommand = options.onCommand;
    this.#log = options.logger;
    this.#redact = options.redact ?? ((text) => text);
    this.subscription = {
      filter: options.topics.commandFilter,
      qos: 1,
      name: "commands",
      skipRetained: true,
      onMessage: (message) => this.receive(message),
    };
  }

  /** Counts of the commands in. */
  get counters(): CommandCounters {
    return { received: this.#received, rejected: this.#rejected };
  }

  /**
   * Handles one message: a command topic's message is parsed and handed on, or logged and
   * counted as rejected; a message on another topic is ignored. Never throws.
   */
  receive(message: IncomingMessage): void {
    const { topic, payload } = message;
    const match = this.#topics.matchCommand(topic);
    if (match === undefined) return;
    if (message.retained) {
      this.#rejected++;
      this.#log.warn("ignoring a retained MQTT command: publish commands without retain", {
        topic,
      });
      return;
    }
    let command: Command;
    try {
      command = parseCommand(match.camera, match.command, payload);
    } catch (e) {
      this.#rejected++;
      this.#log.warn("ignoring a malformed MQTT command", {
        topic,
        error: this.#redact(errorMessage(e)),
        payload: new TextDecoder().decode(payload.subarray(0, 200)),
      });
      return;
    }
    this.#received++;
    this.#log.info("MQTT command", { topic, ...command });
    try {
      this.#onCommand(command);
    } catch (e) {
      this.#log.warn("the MQTT command handler failed", {
        topic,
        error: this.#redact(errorMessage(e)),
      });
    }
  }
}
