/**
 * The zip container of a `torch.save` checkpoint: finds `<folder>/data.pkl`, the storages
 * under `<folder>/data/` and the byte order, and refuses the legacy and TorchScript formats
 * with a message saying what to do. Internal to `../torch_checkpoint.ts`.
 *
 * @module
 */
import { unzipSync } from "fflate";
import { errorMessage, ModelFormatError } from "../../core/errors.ts";

export interface Archive {
  /** The archive's top folder, without a trailing slash. */
  readonly prefix: string;
  readonly pickle: Uint8Array;
  /** Storage bytes by key (`data/<key>` inside the folder). */
  readonly storages: ReadonlyMap<string, Uint8Array>;
  readonly littleEndian: boolean;
  /** Decoded storages, by `<key>/<dtype>`. */
  readonly decoded: Map<string, Float32Array>;
}

/** `torch.save(..., _use_new_zipfile_serialization=False)` starts with this pickled long. */
const LEGACY_MAGIC = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const RESAVE_HINT = "re-save it in Python with torch.save(torch.load(old_path), new_path) " +
  "using PyTorch 1.6 or later";
const ENTRY = /^[^/]+\/(?:data\.pkl|byteorder|data\/[^/]+)$/;

export function openArchive(bytes: Uint8Array, path: string): Archive {
  if (bytes.length === 0) throw new ModelFormatError(path, "the file is empty");
  if (isLegacy(bytes)) {
    throw new ModelFormatError(
      path,
      "this is PyTorch's legacy checkpoint format (saved with " +
        `_use_new_zipfile_serialization=False or PyTorch < 1.6), which is not supported; ${RESAVE_HINT}`,
    );
  }
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04)) {
    const what = bytes[0] === 0x80 ? "a bare pickle" : "no zip signature";
    throw new ModelFormatError(path, `not a PyTorch zip checkpoint (${what})`);
  }
  checkDirectory(bytes, path);
  const names: string[] = [];
  const sizes = new Map<string, number>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (file) => {
        names.push(file.name);
        sizes.set(file.name, file.originalSize);
        // Deflate expands at most 1032-fold: a larger size is corrupt, not worth allocating.
        if (file.compression !== 0 && file.originalSize > 1032 * file.size + 1024) {
          throw new ModelFormatError(path, `corrupt zip entry ${file.name} (impossible size)`);
        }
        return ENTRY.test(file.name);
      },
    });
  } catch (e) {
    if (e instanceof ModelFormatError) throw e;
    throw new ModelFormatError(path, `corrupt or truncated zip archive (${errorMessage(e)})`, {
      cause: e,
    });
  }
  const prefixes = names.filter((n) => /^[^/]+\/data\.pkl$/.test(n)).map((n) => n.split("/")[0]!);
  if (names.some((n) => /^[^/]+\/(code\/|constants\.pkl$)/.test(n))) {
    throw new ModelFormatError(
      path,
      "this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save the " +
        "weights with torch.save(model.state_dict(), path)",
    );
  }
  const prefix = prefixes[0];
  if (prefix === undefined) {
    throw new ModelFormatError(
      path,
      "not a PyTorch checkpoint: the zip holds no <folder>/data.pkl",
    );
  }
  if (prefixes.length > 1) {
    throw new ModelFormatError(path, `ambiguous zip: data.pkl in folders ${prefixes.join(", ")}`);
  }
  const storages = new Map<string, Uint8Array>();
  for (const [name, data] of Object.entries(files)) {
    if (!name.startsWith(`${prefix}/`)) continue;
    if (data.length !== sizes.get(name)) {
      throw new ModelFormatError(
        path,
        `truncated zip entry ${name}: ${data.length} of ${sizes.get(name)} bytes`,
      );
    }
    const rest = name.slice(prefix.length + 1);
    if (rest.startsWith("data/")) storages.set(rest.slice(5), data);
  }
  return {
    prefix,
    pickle: files[`${prefix}/data.pkl`]!,
    storages,
    littleEndian: byteOrder(files[`${prefix}/byteorder`], prefix, path),
    decoded: new Map(),
  };
}

/**
 * Checks that the central directory's entry count fits the file, as fflate reads it,
 * so that a corrupt count cannot make it walk billions of phantom entries.
 */
function checkDirectory(bytes: Uint8Array, path: string): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (at: number) => at >= 0 && at + 4 <= bytes.length ? view.getUint32(at, true) : -1;
  let end = bytes.length - 22;
  while (end >= 0 && bytes.length - end <= 65558 && u32(end) !== 0x06054b50) end--;
  if (end < 0 || bytes.length - end > 65558) return; // fflate reports the missing record
  let count = view.getUint16(end + 8, true);
  let offset = u32(end + 16);
  const z64 = u32(end - 12);
  if (u32(end - 20) === 0x07064b50 && u32(z64) === 0x06064b50) {
    count = u32(z64 + 32);
    offset = u32(z64 + 48);
  }
  if (offset < 0 || offset > bytes.length || count * 46 > bytes.length - offset) {
    throw new ModelFormatError(
      path,
      `corrupt or truncated zip archive (a directory of ${count} entries at byte ${offset} ` +
        `does not fit in ${bytes.length} bytes)`,
    );
  }
}

function isLegacy(bytes: Uint8Array): boolean {
  // PROTO n, LONG1 10 <magic>: the legacy format's first pickle.
  if (bytes[0] === 0x80 && bytes[2] === 0x8a && bytes[3] === 0x0a) {
    if (LEGACY_MAGIC.every((b, i) => bytes[4 + i] === b)) return true;
  }
  // The even older tar format (PyTorch < 0.4): "ustar" at offset 257.
  return new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar";
}

function byteOrder(entry: Uint8Array | undefined, prefix: string, path: string): boolean {
  if (entry === undefined) return true; // written since PyTorch 1.10; older files are little
  const text = new TextDecoder().decode(entry).trim();
  if (text === "little") return true;
  if (text === "big") return false;
  throw new ModelFormatError(path, `unknown byte order "${text}" in ${prefix}/byteorder`);
}
