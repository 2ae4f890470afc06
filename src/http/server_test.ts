import { createLogger } from "../core/log.ts";
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { createHandler } from "./handler.ts";
import { HttpServer } from "./server.ts";
import { sampleStatus } from "./_test_utils.ts";

/** The pipeline file's default `http.host`. */
const LOCAL = "127.0.0.1";

Deno.test("HttpServer() serves /healthz on a real socket and stops when disposed", async () => {
  const lines: string[] = [];
  const logger = createLogger({ sink: (l) => lines.push(l) });
  let url: string;
  {
    await using server = new HttpServer(createHandler({ status: () => sampleStatus() }), {
      hostname: LOCAL,
      port: 0,
      logger,
    });
    url = server.url;
    assertEquals(server.addr.hostname, "127.0.0.1");
    assertOk(server.addr.port > 0);
    const res = await fetch(`${server.url}/healthz`);
    assertEquals([res.status, await res.text()], [200, "ok"]);
  }
  assertOk(lines.some((l) => l.includes("HTTP listening") && l.includes(url)), lines.join("\n"));
  assertOk(lines.some((l) => l.includes("HTTP stopped")));
});

Deno.test("HttpServer() reports a clear error when the port is taken", async () => {
  const handler = createHandler({ status: () => sampleStatus() });
  await using first = new HttpServer(handler, { hostname: LOCAL, port: 0 });
  assertThrows(
    () => new HttpServer(handler, { hostname: LOCAL, port: first.addr.port }),
    Deno.errors.AddrInUse,
    `Cannot listen on 127.0.0.1:${first.addr.port}: the address is already in use`,
  );
});

Deno.test("HttpServer() stops when its signal aborts", async () => {
  const controller = new AbortController();
  const server = new HttpServer(createHandler({ status: () => sampleStatus() }), {
    hostname: LOCAL,
    port: 0,
    signal: controller.signal,
  });
  controller.abort();
  await server.finished;
  await server[Symbol.asyncDispose](); // idempotent
});

Deno.test("HttpServer() refuses to start with an aborted signal", () => {
  const controller = new AbortController();
  controller.abort(new Error("Cannot start: shutting down"));
  assertThrows(
    () =>
      new HttpServer(createHandler({ status: () => sampleStatus() }), {
        hostname: LOCAL,
        port: 0,
        signal: controller.signal,
      }),
    Error,
    "shutting down",
  );
});
