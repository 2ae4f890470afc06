import { join } from "node:path";
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { readTlsFiles } from "./tls_files.ts";
import { DEFAULT_REJECT_UNAUTHORIZED } from "./_test_utils.ts";

Deno.test("readTlsFiles() reads each named file and checks the broker by default", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tls-files-" });
  try {
    for (const name of ["ca.pem", "cert.pem", "key.pem"]) {
      await Deno.writeTextFile(join(dir, name), `${name} contents`);
    }
    assertEquals(
      readTlsFiles({ ca: join(dir, "ca.pem"), rejectUnauthorized: DEFAULT_REJECT_UNAUTHORIZED }),
      {
        ca: "ca.pem contents",
        rejectUnauthorized: true,
      },
    );
    assertEquals(
      readTlsFiles({
        cert: join(dir, "cert.pem"),
        key: join(dir, "key.pem"),
        rejectUnauthorized: false,
      }),
      { cert: "cert.pem contents", key: "key.pem contents", rejectUnauthorized: false },
    );
    assertEquals(readTlsFiles({ rejectUnauthorized: DEFAULT_REJECT_UNAUTHORIZED }), {
      rejectUnauthorized: true,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readTlsFiles() names the file it cannot read, and what it is for", () => {
  const missing = assertThrows(
    () => readTlsFiles({ ca: "/nonexistent/ca.crt", rejectUnauthorized: true }),
    Error,
    "Cannot read MQTT TLS CA file /nonexistent/ca.crt: ",
  );
  assertOk(missing.cause instanceof Deno.errors.NotFound);
  assertThrows(
    () =>
      readTlsFiles({
        cert: "/nonexistent/c.crt",
        key: "/nonexistent/c.key",
        rejectUnauthorized: true,
      }),
    Error,
    "Cannot read MQTT TLS certificate file /nonexistent/c.crt",
  );
  assertThrows(
    () => readTlsFiles({ key: "/nonexistent/c.key", rejectUnauthorized: true }),
    Error,
    "Cannot read MQTT TLS key file /nonexistent/c.key",
  );
});
