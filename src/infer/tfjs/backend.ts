/**
 * Chooses the TensorFlow.js backend for this process.
 *
 * tfjs keeps one global engine per process, so the choice is global too. Candidates, in
 * order of preference:
 * 1. `tfjs-node-gpu`: `@tensorflow/tfjs-node-gpu` (libtensorflow with CUDA),
 * 2. `tfjs-node`: `@tensorflow/tfjs-node` (libtensorflow on the CPU, multi-threaded),
 * 3. `wasm`: `@tensorflow/tfjs-backend-wasm` (XNNPACK with SIMD; single-threaded under
 *    Deno, because tfjs treats Deno as Node and turns wasm threads off),
 * 4. `cpu`: `@tensorflow/tfjs-backend-cpu` (plain JavaScript, slowest).
 *
 * The two native packages are imported dynamically by their bare names, so they are used
 * only where the project's import map names them and their install script has fetched
 * libtensorflow (`deno install --allow-scripts=npm:@tensorflow/tfjs-node`); elsewhere the
 * import fails and the next candidate is tried. The wasm backend loads its `.wasm` file
 * from its own package folder in `node_modules`.
 *
 * @example Pick the best backend and log why
 * ```ts
 * import { selectTfjsBackend } from "./backend.ts";
 * const backend = await selectTfjsBackend();
 * console.log(backend.summary);
 * // tfjs backend wasm (SIMD on, 1 thread); skipped tfjs-node-gpu: ..., tfjs-node: ...
 * ```
 *
 * @module
 */
import { errorMessage } from "../../core/errors.ts";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import type { Logger } from "../../core/log.ts";

/** A backend candidate, named after the package that provides it. */
export type TfjsBackendKind = "tfjs-node-gpu" | "tfjs-node" | "wasm" | "cpu";

/** Every candidate, best first: the default order of {@linkcode selectTfjsBackend}. */
export const TFJS_BACKEND_ORDER: readonly TfjsBackendKind[] = [
  "tfjs-node-gpu",
  "tfjs-node",
  "wasm",
  "cpu",
];

/** A candidate that was not used, with the reason. */
export interface SkippedBackend {
  /** The candidate. */
  readonly kind: TfjsBackendKind;
  /** Why it was skipped, e.g. the import's error. */
  readonly reason: string;
}

/** The backend in use and how it was chosen. */
export interface TfjsBackend {
  /** The candidate in use. */
  readonly kind: TfjsBackendKind;
  /** tfjs's name of the backend: `tensorflow`, `wasm` or `cpu`. */
  readonly name: string;
  /** Details such as `SIMD on, 1 thread`. */
  readonly details: string;
  /** Better candidates that were tried and skipped, in order. */
  readonly skipped: readonly SkippedBackend[];
  /** One line naming the backend in use and why the others were skipped. */
  readonly summary: string;
}

/** Options of {@linkcode selectTfjsBackend}. */
export interface SelectTfjsBackendOptions {
  /** Candidates to try, best first. Default {@linkcode TFJS_BACKEND_ORDER}. */
  readonly candidates?: readonly TfjsBackendKind[];
  /** Receives the summary line at level info. */
  readonly logger?: Logger;
}

const NATIVE_PACKAGES: Record<"tfjs-node-gpu" | "tfjs-node", string> = {
  "tfjs-node-gpu": "@tensorflow/tfjs-node-gpu",
  "tfjs-node": "@tensorflow/tfjs-node",
};

function firstLine(e: unknown): string {
  const text = errorMessage(e);
  return text.split("\n")[0]?.trim() ?? text;
}

/** Activates one candidate: details of the backend, or why it failed. */
async function activate(kind: TfjsBackendKind): Promise<{ details: string } | { failed: string }> {
  if (kind === "tfjs-node-gpu" || kind === "tfjs-node") {
    const specifier = NATIVE_PACKAGES[kind];
    try {
      // A variable specifier: Deno must not try to fetch the package when it is absent.
      await import(specifier);
    } catch (e) {
      return { failed: `cannot import ${specifier}: ${firstLine(e)}` };
    }
    if (!(await setBackend("tensorflow"))) {
      return {
        failed:
          `${specifier} loaded but its "tensorflow" backend did not initialise (see tfjs's warning)`,
      };
    }
    return { details: kind === "tfjs-node-gpu" ? "libtensorflow, CUDA" : "libtensorflow, CPU" };
  }
  if (!(await setBackend(kind))) {
    return { failed: `the ${kind} backend did not initialise (see tfjs's warning)` };
  }
  if (kind === "wasm") {
    const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
    const threads = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
    return {
      details: `SIMD ${simd ? "on" : "off"}, ${
        threads ? "multi-threaded" : "1 thread: tfjs turns wasm threads off under Deno"
      }`,
    };
  }
  return { details: "plain JavaScript, 1 thread" };
}

/** `tf.setBackend`: false when initialisation failed (tfjs then warns on the console). */
async function setBackend(name: string): Promise<boolean> {
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

let defaultSelection: Promise<TfjsBackend> | undefined;

/**
 * Activates the first candidate that works and reports which one it is and why the better
 * ones were skipped. With the default candidates the result is computed once per process
 * and shared.
 *
 * @throws {Error} when no candidate works: "Cannot select a tfjs backend: ..." with every
 * candidate's reason.
 */
export function selectTfjsBackend(options: SelectTfjsBackendOptions = {}): Promise<TfjsBackend> {
  const custom = options.candidates !== undefined;
  let selection = custom ? undefined : defaultSelection;
  if (selection === undefined) {
    selection = select(options.candidates ?? TFJS_BACKEND_ORDER);
    if (!custom) {
      defaultSelection = selection;
      // A failed selection may be retried (for instance after installing a package).
      selection.catch(() => defaultSelection = undefined);
    }
  }
  return selection.then((backend) => {
    if (tf.getBackend() !== backend.name) {
      // Another selection switched the global backend since; switch back.
      return setBackend(backend.name).then(() => backend);
    }
    return backend;
  }).then((backend) => {
    options.logger?.info(backend.summary);
    return backend;
  });
}

async function select(candidates: readonly TfjsBackendKind[]): Promise<TfjsBackend> {
  // Production mode: no debug checks, and no "install tfjs-node" banner from the cpu
  // backend (this module reports the choice itself).
  tf.enableProdMode();
  const skipped: SkippedBackend[] = [];
  for (const kind of candidates) {
    const result = await activate(kind);
    if ("failed" in result) {
      skipped.push({ kind, reason: result.failed });
      continue;
    }
    await tf.ready();
    const name = tf.getBackend();
    const why = skipped.length === 0
      ? ""
      : `; skipped ${skipped.map((s) => `${s.kind} (${s.reason})`).join(", ")}`;
    return {
      kind,
      name,
      details: result.details,
      skipped,
      summary: `tfjs backend ${kind} (${result.details})${why}`,
    };
  }
  const reasons = skipped.map((s) => `${s.kind}: ${s.reason}`).join("; ");
  throw new Error(
    `Cannot select a tfjs backend: ${candidates.length === 0 ? "no candidates" : reasons}`,
  );
}
