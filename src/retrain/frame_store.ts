/**
 * A bounded on-disk store of collected frames for retraining: one directory per store key
 * (a camera, or a model shared by cameras).
 *
 * Layout:
 *
 * ```
 * <dir>/frames/<id>.png    the frame, an 8-bit RGB PNG
 * <dir>/frames/<id>.json   its metadata: the commit record of the frame
 * <dir>/index.json         a snapshot of every committed frame's metadata, for other readers
 * ```
 *
 * Crash safety. Every file is written by core's `writeFileAtomic` (to `<name>.tmp-<uuid>`,
 * flushed, renamed over its final name, the directory flushed), so a file is either absent,
 * the old version or the new one. A frame is
 * committed when its `.json` record exists (written after its PNG); the per-frame records are
 * the source of truth and `index.json` is a whole-file snapshot rewritten by temp + rename
 * after each change, so it is never half-written; if a crash or a disk leaves it torn anyway
 * it is simply rebuilt. On open the store reconciles: temporary files (`*.tmp-<uuid>`, and
 * `*.tmp` from older versions) are deleted, PNGs without
 * a record (orphans) are deleted, records without a PNG (or unreadable) are dropped, and
 * the index is rewritten when it disagrees.
 *
 * Caps and eviction. Auto-collected frames are capped by `maxFrames`, operator-marked frames
 * separately by `maxOperatorFrames`; each cap evicts the oldest of its kind. `maxBytes`
 * bounds the PNG bytes of both kinds together and evicts the oldest auto-collected frames
 * first, operator-marked ones only when no auto-collected frame is left.
 *
 * Failures. {@linkcode FrameStore.add} and {@linkcode FrameStore.mark} never throw on a write
 * error (a full disk, a read-only directory): they return `{ ok: false, error }`, count it in
 * `stats().writeErrors`, keep it as `stats().lastError`, log a warning and call `onError`;
 * the store stays usable. Operations run one at a time in call order.
 *
 * @example
 * ```ts
 * import { FrameStore } from "./frame_store.ts";
 *
 * const dir = await Deno.makeTempDir();
 * {
 *   await using store = await FrameStore.open(dir, { maxFrames: 500 });
 *   const rgb = new Uint8Array(4 * 4 * 3);
 *   const frame = { camera: "line-1", seq: 1, capturedAt: Date.now(), width: 4, height: 4, rgb };
 *   const r = await store.add(frame, { score: 0.42 });
 *   if (!r.ok) console.warn(r.error.message);
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
import { join } from "node:path";
import type { Frame } from "../core/frame.ts";
import { writeFileAtomic, writeFileSynced } from "../core/atomic_write.ts";
import { assertPositiveInteger } from "../core/check.ts";
import { errorMessage, InputError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { decodeImage, encodePng } from "../image/decode.ts";

/** What a stored frame shows, as far as the collector or the operator knows. */
export type FrameLabel = "normal" | "anomalous";

/** Who put a frame in the store: the automatic collector or an operator's mark. */
export type FrameSource = "auto" | "operator";

/** The metadata of one stored frame (its `<id>.json` record). */
export interface StoredFrame {
  /** The store's id of the frame: a zero-padded counter, increasing with insertion order. */
  readonly id: string;
  readonly camera: string;
  readonly seq: number;
  /** Capture time, epoch milliseconds. */
  readonly capturedAt: number;
  /** The model's raw score, when known. */
  readonly score?: number;
  readonly label: FrameLabel;
  readonly source: FrameSource;
  readonly width: number;
  readonly height: number;
  /** Size of the PNG file in bytes. */
  readonly bytes: number;
  /** When the store took the frame (or last re-marked it), epoch milliseconds. */
  readonly storedAt: number;
}

/** Metadata given with {@linkcode FrameStore.add}. */
export interface AddFrameOptions {
  /** The model's raw score. */
  readonly score?: number;
  /** Default `normal`. */
  readonly label?: FrameLabel;
  /** Default `auto`. */
  readonly source?: FrameSource;
}

/** The outcome of a write: never thrown, always returned. */
export type StoreResult =
  | { readonly ok: true; readonly frame: StoredFrame; readonly evicted: readonly string[] }
  | { readonly ok: false; readonly error: Error };

/** A filter of {@linkcode FrameStore.list}. */
export interface ListOptions {
  readonly label?: FrameLabel;
  readonly source?: FrameSource;
  readonly camera?: string;
  /** Only frames captured at or after this time (epoch milliseconds). */
  readonly since?: number;
}

/** Writes `data` to `path`, replacing it; the store passes only temporary (`*.tmp-<uuid>`) paths. */
export type WriteFileFn = (path: string, data: Uint8Array) => Promise<void>;

/** Options of {@linkcode FrameStore.open}; every field is optional. */
export interface FrameStoreOptions {
  /** Most auto-collected frames. Default 1000. */
  readonly maxFrames?: number;
  /** Most operator-marked frames. Default 1000. */
  readonly maxOperatorFrames?: number;
  /** Most PNG bytes in all. Default 512 MiB. */
  readonly maxBytes?: number;
  /** Receives warnings about recovery and write errors. */
  readonly logger?: Logger;
  /** Called with each write error (after it is counted). */
  readonly onError?: (error: Error) => void;
  /** The clock for `storedAt`. Default `Date.now`. */
  readonly now?: () => number;
  /** Writes a temporary file; tests inject failures here. Default: write and `fsync`. */
  readonly writeFile?: WriteFileFn;
}

/** What {@linkcode FrameStore.open} found and repaired. */
export interface RecoveryReport {
  /** Temporary files deleted. */
  readonly tempRemoved: number;
  /** PNGs without a record deleted. */
  readonly orphansRemoved: number;
  /** Records without a readable PNG, or unreadable records, dropped. */
  readonly missingDropped: number;
  /** Whether `index.json` was missing, torn or stale and was rewritten. */
  readonly indexRebuilt: boolean;
}

/** Counters and sizes of a {@linkcode FrameStore}. */
export interface FrameStoreStats {
  readonly frames: number;
  readonly autoFrames: number;
  readonly operatorFrames: number;
  readonly bytes: number;
  /** Frames added since open. */
  readonly added: number;
  /** Frames evicted since open. */
  readonly evicted: number;
  /** Failed writes since open. */
  readonly writeErrors: number;
  /** The last write error's message. */
  readonly lastError?: string;
  readonly recovery: RecoveryReport;
}

const INDEX = "index.json";
const OPEN = "Cannot open frame store";
const FRAMES = "frames";
const ID_DIGITS = 12;

/** A temporary file's name: `writeFileAtomic`'s `<name>.tmp-<uuid>`, or an older `<name>.tmp`. */
const TEMP_NAME = /\.tmp(-[0-9a-f-]{36})?$/;

function isStoredFrame(v: unknown, id: string): v is StoredFrame {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  return r.id === id && typeof r.camera === "string" && typeof r.seq === "number" &&
    typeof r.capturedAt === "number" && (r.label === "normal" || r.label === "anomalous") &&
    (r.source === "auto" || r.source === "operator") && typeof r.width === "number" &&
    typeof r.height === "number" && typeof r.bytes === "number" &&
    typeof r.storedAt === "number" && (r.score === undefined || typeof r.score === "number");
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * A bounded, crash-safe, on-disk store of frames (see the module doc for the layout, the
 * caps and the recovery rules). Implements `AsyncDisposable`: disposing waits for the
 * writes in flight.
 */
export class FrameStore implements AsyncDisposable {
  readonly #dir: string;
  readonly #framesDir: string;
  readonly #maxFrames: number;
  readonly #maxOperator: number;
  readonly #maxBytes: number;
  readonly #logger: Logger | undefined;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #now: () => number;
  readonly #writeFile: WriteFileFn;
  /** Committed frames by id; Map order is insertion (= id) order. */
  #frames = new Map<string, StoredFrame>();
  #nextId = 0;
  #bytes = 0;
  #added = 0;
  #evicted = 0;
  #writeErrors = 0;
  #lastError: string | undefined;
  #recovery: RecoveryReport = {
    tempRemoved: 0,
    orphansRemoved: 0,
    missingDropped: 0,
    indexRebuilt: false,
  };
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(dir: string, options: FrameStoreOptions) {
    this.#dir = dir;
    this.#framesDir = join(dir, FRAMES);
    this.#maxFrames = assertPositiveInteger(options.maxFrames ?? 1000, "maxFrames", OPEN);
    this.#maxOperator = assertPositiveInteger(
      options.maxOperatorFrames ?? 1000,
      "maxOperatorFrames",
      OPEN,
    );
    this.#maxBytes = assertPositiveInteger(options.maxBytes ?? 512 * 1024 * 1024, "maxBytes", OPEN);
    this.#logger = options.logger;
    this.#onError = options.onError;
    this.#now = options.now ?? Date.now;
    this.#writeFile = options.writeFile ?? writeFileSynced;
  }

  /**
   * Opens (creating if needed) the store in `dir` and reconciles it with the files on disk.
   *
   * @throws {RangeError} when a cap is not a positive integer.
   * @throws {Deno.errors.PermissionDenied} and other file-system errors when `dir` cannot be
   * created or read (a store that cannot even be opened is a configuration error).
   */
  static async open(dir: string, options: FrameStoreOptions = {}): Promise<FrameStore> {
    const store = new FrameStore(dir, options);
    await Deno.mkdir(store.#framesDir, { recursive: true });
    await store.#recover();
    return store;
  }

  /** The store's directory. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Stores a frame as a PNG with its metadata, then evicts past the caps.
   * Never throws: a write error (ENOSPC, EROFS...) comes back as `{ ok: false, error }`.
   */
  add(frame: Frame, options: AddFrameOptions = {}): Promise<StoreResult> {
    return this.#run("add frame", () => this.#add(frame, options));
  }

  /**
   * An operator's mark on a stored frame: sets its label and makes it operator-sourced (so
   * it falls under `maxOperatorFrames`). Never throws; an unknown id is `{ ok: false }`.
   */
  mark(id: string, label: FrameLabel): Promise<StoreResult> {
    return this.#run("mark frame", async () => {
      const old = this.#frames.get(id);
      if (old === undefined) throw new InputError(`Cannot mark frame ${id}: no such frame`);
      const next: StoredFrame = { ...old, label, source: "operator", storedAt: this.#now() };
      await this.#writeAtomic(this.#recordPath(id), this.#encodeJson(next));
      this.#frames.set(id, next);
      const evicted = await this.#enforceCaps();
      await this.#writeIndexReported();
      return { ok: true, frame: next, evicted };
    });
  }

  /** The stored frames matching `filter`, oldest first. */
  list(filter: ListOptions = {}): StoredFrame[] {
    return [...this.#frames.values()].filter((f) =>
      (filter.label === undefined || f.label === filter.label) &&
      (filter.source === undefined || f.source === filter.source) &&
      (filter.camera === undefined || f.camera === filter.camera) &&
      (filter.since === undefined || f.capturedAt >= filter.since)
    );
  }

  /** The metadata of one frame, or `undefined`. */
  get(id: string): StoredFrame | undefined {
    return this.#frames.get(id);
  }

  /**
   * Reads a stored frame back as RGB.
   *
   * @throws {InputError} when the id is unknown or its PNG cannot be read or decoded.
   */
  async read(id: string): Promise<Frame> {
    const meta = this.#frames.get(id);
    if (meta === undefined) throw new InputError(`Cannot read frame ${id}: no such frame`);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(this.#pngPath(id));
    } catch (e) {
      throw new InputError(`Cannot read frame ${id}: ${errorMessage(e)}`, { cause: e });
    }
    const img = decodeImage(bytes, this.#pngPath(id));
    return {
      camera: meta.camera,
      seq: meta.seq,
      capturedAt: meta.capturedAt,
      width: img.width,
      height: img.height,
      rgb: img.data,
    };
  }

  /**
   * Copies a stored frame's PNG to `path` as it is (no decoding): how a training folder is
   * filled.
   *
   * @throws {InputError} when the id is unknown or the file cannot be copied.
   */
  async copyPng(id: string, path: string): Promise<void> {
    if (!this.#frames.has(id)) throw new InputError(`Cannot copy frame ${id}: no such frame`);
    try {
      await Deno.copyFile(this.#pngPath(id), path);
    } catch (e) {
      throw new InputError(`Cannot copy frame ${id}: ${errorMessage(e)}`, { cause: e });
    }
  }

  /** Sizes, counters and what the last open repaired. */
  stats(): FrameStoreStats {
    let operator = 0;
    for (const f of this.#frames.values()) if (f.source === "operator") operator++;
    return {
      frames: this.#frames.size,
      autoFrames: this.#frames.size - operator,
      operatorFrames: operator,
      bytes: this.#bytes,
      added: this.#added,
      evicted: this.#evicted,
      writeErrors: this.#writeErrors,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      recovery: this.#recovery,
    };
  }

  /** Waits for the writes already asked for; later writes return `{ ok: false }`. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
  }

  /** Same as {@linkcode FrameStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- internals ----

  #pngPath(id: string): string {
    return join(this.#framesDir, `${id}.png`);
  }

  #recordPath(id: string): string {
    return join(this.#framesDir, `${id}.json`);
  }

  #encodeJson(v: unknown): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(v));
  }

  /** Runs `op` after the operations before it; turns any error into a result. */
  #run(action: string, op: () => Promise<StoreResult>): Promise<StoreResult> {
    if (this.#closed) {
      return Promise.resolve({
        ok: false,
        error: new Error(`Cannot ${action}: the store is closed`),
      });
    }
    const result = this.#queue.then(async (): Promise<StoreResult> => {
      try {
        return await op();
      } catch (e) {
        // A caller's mistake (unknown id, a frame whose size does not match) is returned as is;
        // anything else is a file-system failure, counted and reported.
        if (e instanceof InputError || e instanceof RangeError) return { ok: false, error: e };
        const error = new Error(
          `Cannot ${action} in ${this.#dir}: ${errorMessage(e)}`,
          { cause: e },
        );
        this.#reportWriteError(error);
        return { ok: false, error };
      }
    });
    this.#queue = result;
    return result;
  }

  #reportWriteError(error: Error): void {
    this.#writeErrors++;
    this.#lastError = error.message;
    this.#logger?.warn("frame store write failed", { dir: this.#dir, error: error.message });
    try {
      this.#onError?.(error);
    } catch {
      // A failing listener must not break the store.
    }
  }

  async #add(frame: Frame, options: AddFrameOptions): Promise<StoreResult> {
    const png = encodePng({ width: frame.width, height: frame.height, data: frame.rgb });
    const id = String(this.#nextId).padStart(ID_DIGITS, "0");
    const meta: StoredFrame = {
      id,
      camera: frame.camera,
      seq: frame.seq,
      capturedAt: frame.capturedAt,
      ...(options.score === undefined ? {} : { score: options.score }),
      label: options.label ?? "normal",
      source: options.source ?? "auto",
      width: frame.width,
      height: frame.height,
      bytes: png.length,
      storedAt: this.#now(),
    };
    // The id is used up even if the write fails, so a half-written file never shadows a frame.
    this.#nextId++;
    try {
      await this.#writeAtomic(this.#pngPath(id), png);
      await this.#writeAtomic(this.#recordPath(id), this.#encodeJson(meta)); // the commit
    } catch (e) {
      await removeIfExists(this.#pngPath(id)).catch(() => {});
      throw e;
    }
    this.#frames.set(id, meta);
    this.#bytes += meta.bytes;
    this.#added++;
    const evicted = await this.#enforceCaps();
    await this.#writeIndexReported();
    return { ok: true, frame: meta, evicted };
  }

  /** Evicts past the caps (see the module doc); returns the evicted ids. */
  async #enforceCaps(): Promise<string[]> {
    const evicted: string[] = [];
    const oldest = (source: FrameSource) => {
      for (const f of this.#frames.values()) if (f.source === source) return f;
      return undefined;
    };
    const count = (source: FrameSource) => {
      let n = 0;
      for (const f of this.#frames.values()) if (f.source === source) n++;
      return n;
    };
    const evict = async (f: StoredFrame) => {
      await removeIfExists(this.#recordPath(f.id)); // uncommit first
      this.#frames.delete(f.id);
      this.#bytes -= f.bytes;
      this.#evicted++;
      evicted.push(f.id);
      await removeIfExists(this.#pngPath(f.id));
    };
    for (
      const [source, cap] of [["auto", this.#maxFrames], ["operator", this.#maxOperator]] as const
    ) {
      let n = count(source);
      while (n > cap) {
        await evict(oldest(source)!);
        n--;
      }
    }
    while (this.#bytes > this.#maxBytes && this.#frames.size > 0) {
      await evict(oldest("auto") ?? oldest("operator")!);
    }
    return evicted;
  }

  #writeAtomic(path: string, data: Uint8Array): Promise<void> {
    return writeFileAtomic(path, data, { writeTemp: this.#writeFile });
  }

  /**
   * Rewrites the index snapshot. A failure here is reported but does not fail the operation:
   * the frame records are already committed and the next open rebuilds the index.
   */
  async #writeIndexReported(): Promise<void> {
    try {
      await this.#writeIndex();
    } catch (e) {
      this.#reportWriteError(
        new Error(`Cannot write the index of ${this.#dir}: ${errorMessage(e)}`, { cause: e }),
      );
    }
  }

  async #writeIndex(): Promise<void> {
    const index = { version: 1, nextId: this.#nextId, frames: [...this.#frames.values()] };
    await this.#writeAtomic(join(this.#dir, INDEX), this.#encodeJson(index));
  }

  async #recover(): Promise<void> {
    let tempRemoved = 0, orphansRemoved = 0, missingDropped = 0;
    for (const d of [this.#dir, this.#framesDir]) {
      for await (const e of Deno.readDir(d)) {
        if (e.isFile && TEMP_NAME.test(e.name)) {
          await removeIfExists(join(d, e.name));
          tempRemoved++;
        }
      }
    }
    const pngs = new Set<string>();
    const records = new Set<string>();
    let maxId = -1;
    for await (const e of Deno.readDir(this.#framesDir)) {
      const m = /^(\d+)\.(png|json)$/.exec(e.name);
      if (!e.isFile || m === null) continue;
      (m[2] === "png" ? pngs : records).add(m[1]!);
      maxId = Math.max(maxId, Number(m[1]));
    }
    const found: StoredFrame[] = [];
    for (const id of [...records].sort()) {
      let meta: unknown;
      try {
        meta = JSON.parse(await Deno.readTextFile(this.#recordPath(id)));
      } catch {
        meta = undefined;
      }
      if (pngs.has(id) && isStoredFrame(meta, id)) {
        found.push(meta);
        pngs.delete(id);
      } else {
        await removeIfExists(this.#recordPath(id));
        missingDropped++;
      }
    }
    for (const id of pngs) {
      await removeIfExists(this.#pngPath(id));
      orphansRemoved++;
    }
    for (const f of found) {
      this.#frames.set(f.id, f);
      this.#bytes += f.bytes;
    }
    const index = await this.#readIndex();
    this.#nextId = Math.max(maxId + 1, index?.nextId ?? 0);
    const expected = JSON.stringify(found);
    const indexRebuilt = index === undefined || index === null ||
      JSON.stringify(index.frames) !== expected;
    this.#recovery = { tempRemoved, orphansRemoved, missingDropped, indexRebuilt };
    if (tempRemoved + orphansRemoved + missingDropped > 0 || (indexRebuilt && index !== null)) {
      this.#logger?.warn("frame store recovered", { dir: this.#dir, ...this.#recovery });
    }
    // Caps may have shrunk since the last run.
    const evicted = await this.#enforceCaps();
    if (indexRebuilt || evicted.length > 0) await this.#writeIndexReported();
  }

  /** The index, `undefined` when torn or invalid, `null` when absent. */
  async #readIndex(): Promise<{ nextId: number; frames: unknown } | undefined | null> {
    let text: string;
    try {
      text = await Deno.readTextFile(join(this.#dir, INDEX));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      return undefined;
    }
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v !== "object" || v === null) return undefined;
      const r = v as Record<string, unknown>;
      if (r.version !== 1 || typeof r.nextId !== "number" || !Array.isArray(r.frames)) {
        return undefined;
      }
      return { nextId: r.nextId, frames: r.frames };
    } catch {
      return undefined;
    }
  }
}
