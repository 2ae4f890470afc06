/**
 * Registers TensorFlow.js's gradient functions, which `@tensorflow/tfjs-core`'s Node
 * bundle leaves out: they ship with the union package `@tensorflow/tfjs`, whose Node bundle
 * registers them in tfjs's global registry when it loads. The project's backends import
 * only the core and the backend packages (and `tfjs-node` pulls in the union package only
 * where its native binding is installed), so training loads it here when needed.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { errorMessage } from "../../core/errors.ts";

/** The union package, by version: the one `tfjs-node` 4.22 depends on. */
const UNION_PACKAGE = "npm:@tensorflow/tfjs@4.22.0";

let loading: Promise<void> | undefined;

/** Whether tfjs's gradient functions are registered (tested on `Add`). */
export function hasGradients(): boolean {
  return tf.getGradient("Add") !== undefined;
}

/**
 * Makes sure tfjs's gradient functions are registered, loading `@tensorflow/tfjs` once if
 * they are not.
 *
 * @throws {Error} "Cannot register tfjs gradients: ..." when the package cannot be loaded.
 */
export function ensureGradients(): Promise<void> {
  if (hasGradients()) return Promise.resolve();
  loading ??= (async () => {
    try {
      // A variable specifier: loaded only when training needs it.
      const specifier = UNION_PACKAGE;
      await import(specifier);
    } catch (e) {
      loading = undefined;
      throw new Error(
        `Cannot register tfjs gradients: cannot load ${UNION_PACKAGE}: ${errorMessage(e)}`,
        { cause: e },
      );
    }
    if (!hasGradients()) {
      loading = undefined;
      throw new Error(`Cannot register tfjs gradients: ${UNION_PACKAGE} did not register them`);
    }
  })();
  return loading;
}
