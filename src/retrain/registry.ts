/**
 * The model registry of one camera (or of a model shared by several cameras): the
 * versions of its model on disk, which one serves, and every promotion and rollback.
 *
 * ```text
 * <dir>/
 *   registry.json          { current, previous: [...], history: [...] }, the one commit point
 *   versions/<id>/         project model directories (model.json + weights.safetensors)
 *   versions/.tmp-<uuid>/  a candidate being copied in (removed by open())
 *   versions/.trash-<id>/  a pruned version being deleted (removed by open())
 * ```
 *
 * Crash safety: a version directory appears under its final name only by one `rename` of
 * a fully copied, fsynced and verified temporary directory; `registry.json` (the `current`
 * pointer, the stack of previous versions and the history together) is replaced only by
 * writing a fsynced temporary file and renaming it over the old one, after the target
 * version was loaded and checked; pruning renames a version into the trash before deleting
 * it, and never touches the current or the previous version. So a crash at any moment
 * leaves `registry.json` naming a complete, loadable version (or no version at all before
 * the first promotion), and {@linkcode ModelRegistry.open} removes whatever was half done.
 *
 * Version ids are `<UTC time>-<8 hex of the weights' SHA-256>`, e.g.
 * `20261128T183012345Z-3fa2b1c0`, so they sort by creation time.
 *
 * @module
 */
import { sha256Hex } from "../core/sha256.ts";
import { join } from "node:path";
import { fsyncDir, fsyncFile, writeFileAtomic } from "../core/atomic_write.ts";
import { assertNonNegativeInteger } from "../core/check.ts";
import type { Logger } from "../core/log.ts";
import type { EfficientAdModel } from "../model/model.ts";
import { isProjectModelDir, readProjectModel, WEIGHTS_FILE } from "../model/project_format.ts";

/** The registry's state file: the current pointer, previous versions and history. */
export const REGISTRY_FILE = "registry.json";
/** The folder of version directories. */
export const VERSIONS_DIR = "versions";
/** How many history entries `registry.json` keeps (the oldest are dropped). */
export const HISTORY_LIMIT = 1000;

const TMP_PREFIX = ".tmp-";
const TRASH_PREFIX = ".trash-";
const ID_PATTERN = /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}(-[0-9]+)?$/;

/** One promotion or rollback, as stored in the history. */
export interface RegistryEvent {
  /** ISO time of the change. */
  readonly at: string;
  /** What happened. */
  readonly action: "promote" | "rollback";
  /** The version that serves after the change. */
  readonly id: string;
  /** The version that served before, if any. */
  readonly from?: string;
  /** Why, in words (a validation summary, an operator's command). */
  readonly reason: string;
}

/** The version that serves, loaded. */
export interface CurrentModel {
  /** Its version id. */
  readonly id: string;
  /** Its project model directory. */
  readonly path: string;
  /** The loaded model. */
  readonly model: EfficientAdModel;
}

/**
 * The points between the steps of a change at which {@linkcode RegistryOptions.onStep} is
 * called; a hook that throws there stops the change as a crash would (tests use it).
 */
export type RegistryStep = typeof REGISTRY_STEPS[number];

/** Every {@linkcode RegistryStep}, in the order a change passes them. */
export const REGISTRY_STEPS = [
  "add:partial-copy",
  "add:copied",
  "add:renamed",
  "pointer:temp-written",
  "pointer:renamed",
  "prune:trashed",
] as const;

/** Options of {@linkcode ModelRegistry.open}. */
export interface RegistryOptions {
  /**
   * How many versions are kept on disk besides the current, the previous and the newest
   * one (a candidate awaiting validation): the newest by id; older ones are pruned after
   * each change and at open. Default 3; at least 0.
   */
  readonly keep?: number;
  /** Receives one line per change and per repair made at open. */
  readonly logger?: Logger;
  /** Called between the steps of a change (fault injection in tests). */
  readonly onStep?: (step: RegistryStep) => void | Promise<void>;
  /** The clock for ids and history times. Default `() => new Date()`. */
  readonly now?: () => Date;
}

/** Options of {@linkcode ModelRegistry.addCandidate}. */
export interface AddCandidateOptions {
  /** Use this id instead of a generated one (must not exist yet; no `/`, no leading dot). */
  readonly id?: string;
}

interface State {
  current: string | null;
  /** Versions that served before `current`, oldest first; rollback pops the last. */
  previous: string[];
  history: RegistryEvent[];
}

function emptyState(): State {
  return { current: null, previous: [], history: [] };
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === "string");
}

function parseState(text: string, path: string): State {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`Cannot open model registry ${path}: not valid JSON`, { cause: e });
  }
  const v = value as Partial<Record<keyof State, unknown>> | null;
  if (
    typeof v !== "object" || v === null ||
    !(v.current === null || typeof v.current === "string") ||
    !isStringArray(v.previous) || !Array.isArray(v.history)
  ) {
    throw new Error(`Cannot open model registry ${path}: unexpected contents`);
  }
  return {
    current: v.current,
    previous: v.previous,
    history: v.history as RegistryEvent[],
  };
}

function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

/** Copies `src` into `dest` (created), recursively, fsyncing every file. */
async function copyTree(
  src: string,
  dest: string,
  afterFirst: () => Promise<void>,
): Promise<void> {
  await Deno.mkdir(dest, { recursive: true });
  let first = true;
  for await (const entry of Deno.readDir(src)) {
    const from = join(src, entry.name);
    const to = join(dest, entry.name);
    if (entry.isDirectory) await copyTree(from, to, async () => {});
    else if (entry.isFile) {
      await Deno.copyFile(from, to);
      await fsyncFile(to);
    } else continue;
    if (first) {
      first = false;
      await afterFirst();
    }
  }
}

function compactTime(date: Date): string {
  return date.toISOString().replace(/[-:.]/g, "");
}

async function shortHash(path: string): Promise<string> {
  return (await sha256Hex(await Deno.readFile(path))).slice(0, 8);
}

/**
 * A directory of model versions with an atomically switched `current` pointer; see the
 * module documentation for the layout and the crash-safety argument.
 *
 * Changes made through one instance are serialised; two processes must not open the same
 * registry for writing at once.
 *
 * @example
 * ```ts
 * import { ModelRegistry } from "./registry.ts";
 *
 * async function promoteTrained(outDir: string): Promise<void> {
 *   const registry = await ModelRegistry.open("models/line-1", { keep: 3 });
 *   const id = await registry.addCandidate(outDir);
 *   await registry.promote(id, "validated: flags 1 % vs 9 % of held-out normal frames");
 *   const serving = await registry.current(); // { id, path, model }
 * }
 * ```
 */
export class ModelRegistry {
  readonly #dir: string;
  readonly #keep: number;
  readonly #logger: Logger | undefined;
  readonly #onStep: ((step: RegistryStep) => void | Promise<void>) | undefined;
  readonly #now: () => Date;
  #state: State;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, state: State, options: RegistryOptions) {
    this.#dir = dir;
    this.#state = state;
    this.#keep = options.keep ?? 3;
    this.#logger = options.logger;
    this.#onStep = options.onStep;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Opens (creating when needed) the registry in `dir`, removes what an interrupted change
   * left behind (temporary candidate directories, temporary pointer files, half-deleted
   * versions), and, should the current version be missing or unloadable (damaged from
   * outside), falls back to the newest loadable previous version and records it.
   *
   * @throws {RangeError} when `keep` is not a non-negative integer.
   * @throws {Error} "Cannot open model registry ..." when `registry.json` is not the
   * registry's; file-system errors as `Deno.mkdir` and `Deno.readTextFile`.
   */
  static async open(dir: string, options: RegistryOptions = {}): Promise<ModelRegistry> {
    assertNonNegativeInteger(options.keep ?? 3, "keep", `Cannot open model registry ${dir}`);
    const versions = join(dir, VERSIONS_DIR);
    await Deno.mkdir(versions, { recursive: true });
    const logger = options.logger;
    for await (const entry of Deno.readDir(versions)) {
      if (entry.name.startsWith(TMP_PREFIX) || entry.name.startsWith(TRASH_PREFIX)) {
        await Deno.remove(join(versions, entry.name), { recursive: true });
        logger?.warn("removed leftover of an interrupted change", { path: entry.name });
      }
    }
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(`${REGISTRY_FILE}${TMP_PREFIX}`)) {
        await Deno.remove(join(dir, entry.name));
        logger?.warn("removed leftover temporary pointer", { path: entry.name });
      }
    }
    const statePath = join(dir, REGISTRY_FILE);
    let state: State;
    try {
      state = parseState(await Deno.readTextFile(statePath), statePath);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      state = emptyState();
    }
    const registry = new ModelRegistry(dir, state, options);
    await registry.#repair();
    return registry;
  }

  /** The registry's directory. */
  get dir(): string {
    return this.#dir;
  }

  /** The id of the version that serves, or `undefined` before the first promotion. */
  get currentId(): string | undefined {
    return this.#state.current ?? undefined;
  }

  /** The version that served before the current one (the target of a rollback). */
  get previousId(): string | undefined {
    return this.#state.previous.at(-1);
  }

  /** The project model directory of a version (whether or not it exists). */
  pathOf(id: string): string {
    return join(this.#dir, VERSIONS_DIR, id);
  }

  /**
   * Loads the version that serves.
   *
   * @returns `undefined` before the first promotion.
   * @throws {ModelFormatError} when its files were damaged from outside since open.
   */
  async current(): Promise<CurrentModel | undefined> {
    const id = this.#state.current;
    if (id === null) return undefined;
    const path = this.pathOf(id);
    return { id, path, model: await readProjectModel(path) };
  }

  /** The version ids on disk, oldest first (candidates included). */
  async versions(): Promise<string[]> {
    const ids: string[] = [];
    for await (const entry of Deno.readDir(join(this.#dir, VERSIONS_DIR))) {
      if (entry.isDirectory && !entry.name.startsWith(".")) ids.push(entry.name);
    }
    return ids.sort();
  }

  /** Every promotion and rollback, oldest first (at most {@linkcode HISTORY_LIMIT}). */
  history(): readonly RegistryEvent[] {
    return [...this.#state.history];
  }

  /**
   * Copies a trained project model directory into the registry as a new version, without
   * promoting it: it is copied to a temporary directory, fsynced, loaded to check it, and
   * renamed to `versions/<id>` in one step. Older versions beyond `keep` are then pruned.
   *
   * @returns the new version's id.
   * @throws {ModelFormatError} when `srcDir` is not a loadable project model (nothing is
   * added then). @throws {Deno.errors.AlreadyExists} when `options.id` exists.
   * @throws {TypeError} when `options.id` is not a plain directory name.
   */
  addCandidate(srcDir: string, options: AddCandidateOptions = {}): Promise<string> {
    return this.#serial(() => this.#addCandidate(srcDir, options));
  }

  /**
   * Makes version `id` the one that serves: it is loaded and checked first, then
   * `registry.json` is replaced atomically; the version that served before becomes the
   * previous one (the target of {@linkcode rollback}). Promoting the current version
   * again is a no-op recorded nowhere.
   *
   * @throws {RangeError} when no such version exists. @throws {ModelFormatError} when it
   * does not load; nothing changes then.
   */
  promote(id: string, reason: string): Promise<void> {
    return this.#serial(() => this.#switch("promote", id, reason));
  }

  /**
   * Serves the previous version again; the version rolled back from stays on disk until
   * pruned and can be promoted again.
   *
   * @returns the id now serving.
   * @throws {RangeError} when there is no previous version.
   * @throws {ModelFormatError} when the previous version does not load; nothing changes.
   */
  rollback(reason = "rollback requested"): Promise<string> {
    return this.#serial(async () => {
      const target = this.#state.previous.at(-1);
      if (target === undefined) {
        throw new RangeError(`Cannot roll back model registry ${this.#dir}: no previous version`);
      }
      await this.#switch("rollback", target, reason);
      return target;
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #step(step: RegistryStep): Promise<void> {
    await this.#onStep?.(step);
  }

  async #addCandidate(srcDir: string, options: AddCandidateOptions): Promise<string> {
    if (options.id !== undefined && !/^[^./][^/]*$/.test(options.id)) {
      throw new TypeError(`Cannot add candidate ${srcDir}: bad version id "${options.id}"`);
    }
    await readProjectModel(srcDir);
    const versions = join(this.#dir, VERSIONS_DIR);
    const temp = join(versions, `${TMP_PREFIX}${crypto.randomUUID()}`);
    let id = options.id;
    try {
      await copyTree(srcDir, temp, () => this.#step("add:partial-copy"));
      await readProjectModel(temp);
      await this.#step("add:copied");
      if (id === undefined) {
        const base = `${compactTime(this.#now())}-${await shortHash(join(temp, WEIGHTS_FILE))}`;
        id = base;
        for (let n = 2; await isProjectModelDir(this.pathOf(id)); n++) id = `${base}-${n}`;
      } else if (await exists(this.pathOf(id))) {
        throw new Deno.errors.AlreadyExists(
          `Cannot add candidate ${srcDir}: version ${id} already exists`,
        );
      }
      await Deno.rename(temp, this.pathOf(id));
    } catch (e) {
      await Deno.remove(temp, { recursive: true }).catch(() => {});
      throw e;
    }
    await fsyncDir(versions);
    await this.#step("add:renamed");
    this.#logger?.info("model candidate added", { id, from: srcDir });
    await this.#prune();
    return id;
  }

  async #switch(action: "promote" | "rollback", id: string, reason: string): Promise<void> {
    const from = this.#state.current;
    if (action === "promote" && from === id) return;
    if (!(await isProjectModelDir(this.pathOf(id)))) {
      throw new RangeError(`Cannot ${action} to model version ${id}: no such version`);
    }
    await readProjectModel(this.pathOf(id));
    const previous = action === "promote"
      ? [...this.#state.previous.filter((p) => p !== id), ...(from !== null ? [from] : [])]
      : this.#state.previous.slice(0, -1);
    const event: RegistryEvent = {
      at: this.#now().toISOString(),
      action,
      id,
      ...(from !== null ? { from } : {}),
      reason,
    };
    const next: State = {
      current: id,
      previous,
      history: [...this.#state.history, event].slice(-HISTORY_LIMIT),
    };
    await this.#writeState(next);
    this.#state = next;
    this.#logger?.info(action === "promote" ? "model promoted" : "model rolled back", {
      id,
      from: from ?? "none",
      reason,
    });
    await this.#prune();
  }

  async #writeState(state: State): Promise<void> {
    const path = join(this.#dir, REGISTRY_FILE);
    const bytes = new TextEncoder().encode(JSON.stringify(state, null, 2) + "\n");
    // The temporary file is `registry.json.tmp-<uuid>` (TMP_PREFIX), which open() cleans.
    await writeFileAtomic(path, bytes, { beforeRename: () => this.#step("pointer:temp-written") });
    await this.#step("pointer:renamed");
  }

  /**
   * Removes the oldest versions beyond `keep`, never the current, the previous or the
   * newest one (a candidate awaiting validation).
   */
  async #prune(): Promise<void> {
    const protectedIds = new Set<string>();
    if (this.#state.current !== null) protectedIds.add(this.#state.current);
    const prev = this.#state.previous.at(-1);
    if (prev !== undefined) protectedIds.add(prev);
    const all = await this.versions();
    const newest = all.at(-1);
    if (newest !== undefined) protectedIds.add(newest);
    const others = all.filter((id) => !protectedIds.has(id));
    const doomed = others.slice(0, Math.max(0, others.length - this.#keep));
    if (doomed.length === 0) return;
    const versions = join(this.#dir, VERSIONS_DIR);
    for (const id of doomed) {
      const trash = join(versions, `${TRASH_PREFIX}${id}`);
      await Deno.rename(this.pathOf(id), trash);
      await this.#step("prune:trashed");
      await Deno.remove(trash, { recursive: true });
      this.#logger?.info("model version pruned", { id });
    }
    const gone = new Set(doomed);
    if (this.#state.previous.some((p) => gone.has(p))) {
      await this.#writeState({
        ...this.#state,
        previous: this.#state.previous.filter((p) => !gone.has(p)),
      });
      this.#state = { ...this.#state, previous: this.#state.previous.filter((p) => !gone.has(p)) };
    }
  }

  /** At open: make sure `current` loads, falling back through the previous versions. */
  async #repair(): Promise<void> {
    const loads = async (id: string) => {
      try {
        await readProjectModel(this.pathOf(id));
        return true;
      } catch {
        return false;
      }
    };
    const onDisk = new Set(await this.versions());
    this.#state = {
      ...this.#state,
      previous: this.#state.previous.filter((p) => onDisk.has(p)),
    };
    const state = this.#state;
    const bad = state.current;
    if (bad !== null && !(await loads(bad))) {
      const previous = [...state.previous];
      let found: string | null = null;
      while (previous.length > 0 && found === null) {
        const candidate = previous.pop()!;
        if (await loads(candidate)) found = candidate;
      }
      const reason = `version ${bad} is missing or does not load`;
      const history: RegistryEvent[] = [...state.history];
      if (found !== null) {
        history.push({
          at: this.#now().toISOString(),
          action: "rollback",
          id: found,
          from: bad,
          reason,
        });
      }
      const next: State = { current: found, previous, history: history.slice(-HISTORY_LIMIT) };
      this.#logger?.error("current model version unusable", { id: bad, fallback: found });
      await this.#writeState(next);
      this.#state = next;
    }
    await this.#prune();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** Whether `id` looks like a generated version id (`<UTC time>-<8 hex>[-n]`). */
export function isGeneratedVersionId(id: string): boolean {
  return ID_PATTERN.test(id);
}
