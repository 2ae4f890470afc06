/**
 * A TCP proxy on a free port of 127.0.0.1 whose connections a test can cut, as a network
 * failure would: neither side gets a clean goodbye (an MQTT broker then sends the client's
 * last will).
 *
 * @example
 * ```ts
 * import { TcpProxy } from "./tcp_proxy.ts";
 *
 * async function cutUnder(brokerPort: number): Promise<void> {
 *   await using proxy = new TcpProxy(brokerPort);
 *   // connect a client to 127.0.0.1:proxy.port ...
 *   proxy.cut();
 * }
 * ```
 *
 * @module
 */

/** A TCP proxy to `127.0.0.1:<target>`; disposing it closes the listener and every connection. */
export class TcpProxy implements AsyncDisposable {
  /** The port it listens on. */
  readonly port: number;
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks: Promise<void>[] = [];
  readonly #accepting: Promise<void>;

  constructor(target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept(target);
  }

  /** Closes every proxied connection on both sides; new ones are still accepted. */
  cut(): void {
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    this.#conns.clear();
  }

  /** Stops listening and cuts every connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    this.cut();
    await Promise.all(this.#tasks);
  }

  async #accept(target: number): Promise<void> {
    try {
      for await (const down of this.#listener) {
        let up: Deno.Conn;
        try {
          up = await Deno.connect({ hostname: "127.0.0.1", port: target });
        } catch {
          down.close();
          continue;
        }
        this.#conns.add(down);
        this.#conns.add(up);
        this.#tasks.push(this.#pipe(down, up), this.#pipe(up, down));
      }
    } catch {
      // the listener was closed
    }
  }

  async #pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    try {
      while (true) {
        const n = await from.read(buf);
        if (n === null) break;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // cut
    }
    for (const c of [from, to]) {
      if (this.#conns.delete(c)) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
    }
  }
}
