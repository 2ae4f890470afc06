/**
 * The service's HTTP API as a handler factory, `(Request) => Response`, tested without a
 * socket:
 *
 * - `GET /healthz`: `200 ok` (text) while healthy, `503 unavailable: <reason>` otherwise;
 *   the rule is in `health.ts` (unhealthy when the pipeline does not run, its status cannot
 *   be read, or every camera is `offline`).
 * - `GET /status`: the {@linkcode PipelineStatus} as JSON.
 * - `GET /metrics`: Prometheus text format 0.0.4 (see `metrics.ts`).
 *
 * `HEAD` is answered like `GET` without a body. Unknown paths get 404, other methods 405
 * (with `Allow`), both as JSON `{"error": "..."}`; every error is mapped to a response in
 * one place ({@linkcode errorResponse}), and unexpected ones are logged.
 *
 * @example
 * ```ts
 * import { createHandler } from "./handler.ts";
 * import type { PipelineStatus } from "../core/status.ts";
 *
 * async function health(pipeline: { status(): PipelineStatus }): Promise<number> {
 *   const handler = createHandler({ status: () => pipeline.status() });
 *   const res = await handler(new Request("http://localhost/healthz"));
 *   await res.body?.cancel();
 *   return res.status; // 200, or 503 when a camera is down
 * }
 * ```
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { PipelineStatus } from "../core/status.ts";
import { checkHealth } from "./health.ts";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.ts";

/** An HTTP handler: what `Deno.serve` takes. */
export type Handler = (req: Request) => Response | Promise<Response>;

/** Options of {@linkcode createHandler}. */
export interface HandlerOptions {
  /** A fresh status snapshot; called once per request. */
  readonly status: () => PipelineStatus;
  /** Whether the pipeline runs; `/healthz` answers 503 when false. Default: always true. */
  readonly running?: () => boolean;
  /** Receives unexpected errors. */
  readonly logger?: Logger;
}

/** An error with the HTTP status it maps to; its message goes to the client. */
export class HttpError extends Error {
  /** The response status, e.g. 404. */
  readonly status: number;
  /** Extra response headers, e.g. `Allow` for 405. */
  readonly headers: Readonly<Record<string, string>>;
  /** Makes an error that becomes a `status` response with `message` as its JSON `error`. */
  constructor(
    status: number,
    message: string,
    options?: ErrorOptions & { headers?: Record<string, string> },
  ) {
    super(message, options);
    this.name = "HttpError";
    this.status = status;
    this.headers = options?.headers ?? {};
  }
}

/** The routes the handler serves, for 404 bodies. */
export const ROUTES: readonly string[] = ["/healthz", "/status", "/metrics"];

const NO_STORE = { "cache-control": "no-store" };

function text(body: string, status = 200): Response {
  return new Response(body, {
    status,
    headers: { ...NO_STORE, "content-type": "text/plain; charset=utf-8" },
  });
}

function json(value: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value, null, 2) + "\n", {
    status,
    headers: { ...NO_STORE, ...headers, "content-type": "application/json; charset=utf-8" },
  });
}

/**
 * Maps any error to a JSON response: an {@linkcode HttpError} keeps its status and
 * message; anything else is a 500 "Cannot <method> <path>: <message>", and is logged.
 */
export function errorResponse(e: unknown, req: Request, logger?: Logger): Response {
  if (e instanceof HttpError) {
    return json({ error: e.message }, e.status, { ...e.headers });
  }
  const { pathname } = new URL(req.url);
  const message = `Cannot ${req.method} ${pathname}: ${errorMessage(e)}`;
  logger?.error("HTTP request failed", { error: message });
  return json({ error: message }, 500);
}

/**
 * Makes the service's HTTP handler; see the module documentation for the routes. The
 * handler never throws: errors become responses.
 */
export function createHandler(options: HandlerOptions): Handler {
  const health = (): Response => {
    if (options.running !== undefined && !options.running()) {
      return text("unavailable: the pipeline is not running", 503);
    }
    let status: PipelineStatus;
    try {
      status = options.status();
    } catch (e) {
      const reason = errorMessage(e);
      return text(`unavailable: cannot read the pipeline status: ${reason}`, 503);
    }
    const h = checkHealth(status);
    return h.ok ? text("ok") : text(`unavailable: ${h.reason}`, 503);
  };
  const routes: Record<string, () => Response> = {
    "/healthz": health,
    "/status": () => json(options.status()),
    "/metrics": () =>
      new Response(renderMetrics(options.status()), {
        headers: { ...NO_STORE, "content-type": METRICS_CONTENT_TYPE },
      }),
  };

  return (req: Request): Response => {
    try {
      const { pathname } = new URL(req.url);
      const route = Object.hasOwn(routes, pathname) ? routes[pathname] : undefined;
      if (route === undefined) {
        throw new HttpError(
          404,
          `Cannot ${req.method} ${pathname}: no such route (try ${ROUTES.join(", ")})`,
        );
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        throw new HttpError(405, `Cannot ${req.method} ${pathname}: use GET or HEAD`, {
          headers: { allow: "GET, HEAD" },
        });
      }
      const res = route();
      if (req.method !== "HEAD") return res;
      void res.body?.cancel();
      return new Response(null, { status: res.status, headers: res.headers });
    } catch (e) {
      return errorResponse(e, req, options.logger);
    }
  };
}
