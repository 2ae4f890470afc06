import { createLogger } from "../core/log.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { createHandler, errorResponse, HttpError } from "./handler.ts";
import { sampleStatus } from "./_test_utils.ts";

const get = (path: string, method = "GET") => new Request(`http://localhost${path}`, { method });

Deno.test("createHandler() answers /healthz with 200 ok", async () => {
  const handler = createHandler({ status: () => sampleStatus() });
  const res = await handler(get("/healthz"));
  assertEquals([res.status, await res.text()], [200, "ok"]);
  assertEquals(res.headers.get("content-type"), "text/plain; charset=utf-8");
});

Deno.test("createHandler() answers /healthz with 503 and the reason when every camera is offline", async () => {
  const base = sampleStatus();
  const handler = createHandler({
    status: () => ({ ...base, cameras: base.cameras.map((c) => ({ ...c, state: "offline" })) }),
  });
  const res = await handler(get("/healthz"));
  assertEquals([res.status, await res.text()], [
    503,
    "unavailable: all 2 cameras are offline (line-1, line-2)",
  ]);
});

Deno.test("createHandler() answers /healthz with 503 when the pipeline does not run", async () => {
  const stopped = createHandler({ status: () => sampleStatus(), running: () => false });
  const res = await stopped(get("/healthz"));
  assertEquals([res.status, await res.text()], [503, "unavailable: the pipeline is not running"]);
  const broken = createHandler({
    status: () => {
      throw new Error("not started");
    },
  });
  const res2 = await broken(get("/healthz"));
  assertEquals(res2.status, 503);
  assertOk((await res2.text()).includes("not started"));
});

Deno.test("createHandler() serves /status as JSON", async () => {
  const handler = createHandler({ status: () => sampleStatus() });
  const res = await handler(get("/status"));
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
  assertEquals(res.headers.get("cache-control"), "no-store");
  assertEquals(await res.json(), JSON.parse(JSON.stringify(sampleStatus())));
});

Deno.test("createHandler() serves /metrics in the Prometheus text format", async () => {
  const handler = createHandler({ status: () => sampleStatus() });
  const res = await handler(get("/metrics"));
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assertOk((await res.text()).includes('efficientad_frames_total{camera="line-1"} 120\n'));
});

Deno.test("createHandler() answers HEAD without a body", async () => {
  const handler = createHandler({ status: () => sampleStatus() });
  const res = await handler(get("/metrics", "HEAD"));
  assertEquals([res.status, res.body], [200, null]);
  assertEquals(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
});

Deno.test("createHandler() answers unknown paths with 404 JSON", async () => {
  const handler = createHandler({ status: () => sampleStatus() });
  const res = await handler(get("/nope?x=1"));
  assertEquals(res.status, 404);
  assertEquals(await res.json(), {
    error: "Cannot GET /nope: no such route (try /healthz, /status, /metrics)",
  });
});

Deno.test("createHandler() answers other methods with 405 and Allow", async () => {
  const handler = createHandler({ status: () => sampleStatus() });
  const res = await handler(get("/status", "POST"));
  assertEquals([res.status, res.headers.get("allow")], [405, "GET, HEAD"]);
  assertEquals(await res.json(), { error: "Cannot POST /status: use GET or HEAD" });
});

Deno.test("createHandler() maps an unexpected error to a logged 500", async () => {
  const lines: string[] = [];
  const handler = createHandler({
    status: () => {
      throw new TypeError("status is broken");
    },
    logger: createLogger({ sink: (l) => lines.push(l) }),
  });
  const res = await handler(get("/status"));
  assertEquals(res.status, 500);
  assertEquals(await res.json(), { error: "Cannot GET /status: status is broken" });
  assertEquals(lines.length, 1);
  assertOk(lines[0]!.includes("HTTP request failed"));
});

Deno.test("errorResponse() keeps an HttpError's status, message and headers", async () => {
  const res = errorResponse(
    new HttpError(429, "Cannot GET /x: slow down", { headers: { "retry-after": "1" } }),
    get("/x"),
  );
  assertEquals([res.status, res.headers.get("retry-after")], [429, "1"]);
  assertEquals(await res.json(), { error: "Cannot GET /x: slow down" });
});
