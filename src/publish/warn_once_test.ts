import { assertEquals } from "../../tests/assert.ts";
import { createLogger } from "../core/log.ts";
import { WarnOnce } from "./warn_once.ts";

Deno.test("WarnOnce.warn() logs a key once, with errors as their redacted message", () => {
  const lines: string[] = [];
  const warn = new WarnOnce(
    createLogger({ sink: (l) => lines.push(l) }),
    (text) => text.replaceAll("hunter22", "***"),
  );
  warn.warn("a", "Cannot publish", { error: new Error("bad password hunter22"), n: 1 });
  warn.warn("a", "Cannot publish", { error: new Error("again") });
  warn.warn("b", "Cannot publish stats", { error: "plain" });
  assertEquals(lines.length, 2);
  assertEquals(lines[0]!.includes("bad password ***"), true, lines[0]);
  assertEquals(lines[0]!.includes("hunter22"), false, lines[0]);
  assertEquals(lines[1]!.includes("Cannot publish stats"), true, lines[1]);
});
