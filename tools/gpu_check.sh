#!/usr/bin/env bash
# The GPU check of issue 10, prepared and short: the WebGPU parity against the CPU provider
# (tools/gpu_parity.ts) and the `bench:gpu` table (tools/bench_gpu.ts), on a bare x86-64
# machine with an NVIDIA driver and NO network, in under 8 minutes.
#
# STATUS: READY, UNTESTED ON A GPU. No session of this project has yet run `run` on an
# NVIDIA machine (the task that wrote it was lent none); expect small fixes on the first real
# run. Tested on a machine without a GPU: `prepare` for real (46.3 MiB), and `run --quick`
# offline (`unshare -n`, the carried loader, Mesa's llvmpipe), with the WebGPU engine merged
# in: parity 8.3e-7 of the map range, the bench:gpu table, 58 s in all.
#
#   tools/gpu_check.sh prepare [DIR]    here, with network: fills DIR (default .gpu_carry,
#                                       gitignored) with what the GPU machine lacks
#   tools/gpu_check.sh run [DIR] [--quick] [bench_gpu.ts options...]
#                                       there: unpacks DIR into /tmp, runs parity + bench
#
# With the device tool: `prepare` in the checkout that the tool sends (the session's own, not
# a helper's worktree), then run(command="tools/gpu_check.sh run", carry=[".gpu_carry"],
# timeout_s=540): one call, parity and table in its output_tail and in $OUT/gpu_check.log.
# The carry stays under 64 MiB with the working tree (prepare checks).
#
# What DIR holds (sizes as measured by `prepare`, printed at its end and in DIR/MANIFEST):
#   deno.xz               Deno's x86-64 binary, `xz -6` (about 29 MiB)
#   debs/*.deb            the Vulkan loader (libvulkan1) and libglvnd0, from apt-get download
#   node_modules.tar.xz   the npm packages the two scripts load, pruned to linux-x64:
#                         onnxruntime-node's linux/x64 binding, onnxruntime-web's webgpu
#                         builds + the wasm they load (asyncify; GPU_CHECK_ORT_WEB_EXTRA
#                         adds files), onnx-proto with protobufjs (no cli/)
#
# `run` on the GPU machine: deno to /tmp/gpu_check/bin; the loader from the .debs into
# /tmp/gpu_check/prefix (dpkg-deb -x, LD_LIBRARY_PATH) unless the system has libvulkan.so.1;
# VK_ICD_FILENAMES / VK_DRIVER_FILES at /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
# when present, else Mesa's ICDs as installed (llvmpipe here); node_modules from the tarball
# when the tree has none; DENO_DIR in /tmp. GPU_CHECK_CARRIED_LOADER=1 uses the carried
# loader even where the system has one (to test that path). Every step has its own timeout; a failed step
# does not stop the next; the exit status is the first failure's. Output goes to stdout
# and, where $OUT is set (the device tool), to $OUT/gpu_check.log.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
WORK=/tmp/gpu_check
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
ORT_VERSION=1.30.0

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'Cannot %s\n' "$*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
size_of() { du -sb "$@" | awk '{ s += $1 } END { print s + 0 }'; }

# ------------------------------------------------------------------------------ prepare

find_deno() {
  local d
  d="$(command -v deno)" || return 1
  d="$(readlink -f "$d")"
  # The npm package `deno` may hold a launcher; the binary is then in its platform package.
  if ! head -c 4 "$d" | grep -q 'ELF'; then
    d="$(dirname "$d")/node_modules/@deno/linux-x64-glibc/deno"
  fi
  [ -x "$d" ] && head -c 4 "$d" | grep -q 'ELF' && echo "$d"
}

# The npm packages (.deno folder names) that the two scripts' module graphs load, with
# their dependencies, plus onnxruntime-web (the WebGPU engine's runtime).
npm_closure() {
  local info
  info="$(mktemp)"
  deno info --json tools/bench_gpu.ts >"$info" || return 1
  deno info --json tools/gpu_parity.ts >"$info.2" || return 1
  python3 - "$info" "$info.2" "$ORT_VERSION" <<'EOF'
import json, sys
graphs = [json.load(open(p)) for p in sys.argv[1:3]]
npm = {}
roots = {f"onnxruntime-web@{sys.argv[3]}"}
for g in graphs:
    npm.update(g.get("npmPackages", {}))
    roots |= {m["npmPackage"] for m in g["modules"] if m.get("kind") == "npm"}
seen, todo = set(), list(roots)
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    todo.extend(npm[p]["dependencies"])
for p in sorted(seen):
    name, _, version = p.rpartition("@")
    print(f"{name.replace('/', '+')}@{version}")
EOF
  rm -f "$info" "$info.2"
}

# The dist/ files of onnxruntime-web that the two scripts load: each `onnxruntime-web[/sub]`
# import of their module graphs (and `/webgpu`) resolved through the package's `exports` as
# Node does (the first matching condition of deno, node, import, default, in the object's
# order), then the ort-wasm-* files each entry names.
ort_web_files() {
  local pkg="$1" info rc
  info="$(mktemp)"
  { deno info --json tools/bench_gpu.ts && echo && deno info --json tools/gpu_parity.ts; } >"$info" ||
    return 1
  python3 - "$pkg" "$info" <<'EOF'
import json, os, re, sys
pkg, info = sys.argv[1], sys.argv[2]
exports = json.load(open(os.path.join(pkg, "package.json")))["exports"]
subpaths = {"./webgpu"}
decoder, text, i = json.JSONDecoder(), open(info).read(), 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    graph, i = decoder.raw_decode(text, i)
    for m in graph["modules"]:
        hit = re.match(r"npm:/?onnxruntime-web@[^/]+(/.*)?$", m.get("specifier", ""))
        if m.get("kind") == "npm" and hit:
            subpaths.add("." + (hit.group(1) or ""))


def pick(target):
    if isinstance(target, str):
        return target
    for key, value in target.items():
        if key in ("deno", "node", "import", "default"):
            found = pick(value)
            if found:
                return found
    return None


keep = set()
for sub in sorted(subpaths):
    entry = pick(exports[sub])
    if not entry:
        sys.exit(f"no file for onnxruntime-web{sub[1:]}")
    keep.add(os.path.basename(entry))
for entry in list(keep):
    body = open(os.path.join(pkg, "dist", entry), encoding="utf-8", errors="replace").read()
    keep |= set(re.findall(r"ort-wasm-simd-threaded[a-z.]*\.(?:mjs|wasm)", body))
print(" ".join(sorted(keep)))
EOF
  rc=$?
  rm -f "$info"
  return $rc
}

prepare() {
  local dir="${1:-.gpu_carry}"
  mkdir -p "$dir/debs" || die "prepare $dir: mkdir failed"
  dir="$(cd "$dir" && pwd)"

  local deno_bin
  deno_bin="$(find_deno)" || die "prepare: no deno binary found (command -v deno)"
  if [ ! -s "$dir/deno.xz" ] || [ "$deno_bin" -nt "$dir/deno.xz" ]; then
    say "deno: $deno_bin ($(mib "$(size_of "$deno_bin")")) -> deno.xz (xz -6, about a minute)"
    xz -6 -T0 -c "$deno_bin" >"$dir/deno.xz.part" && mv "$dir/deno.xz.part" "$dir/deno.xz" ||
      die "prepare deno.xz: xz failed"
  fi

  say "Vulkan loader: apt-get download libvulkan1 libglvnd0 (amd64)"
  rm -f "$dir"/debs/*.deb
  local apt_state=/tmp/gpu_check_apt_lists
  mkdir -p "$apt_state/partial"
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$apt_state")
  apt-get "${o[@]}" update -qq || say "apt-get update (amd64 lists) failed; trying the system's"
  (cd "$dir/debs" && { apt-get "${o[@]}" download -qq libvulkan1 libglvnd0 ||
    apt-get download -qq libvulkan1 libglvnd0; }) ||
    die "prepare debs: apt-get download libvulkan1 libglvnd0 failed"

  say "node_modules: the packages the scripts load, pruned"
  [ -d node_modules/.deno ] || deno install || die "prepare node_modules: deno install failed"
  local pkgs=() p q
  while read -r p; do pkgs+=("node_modules/.deno/$p"); done < <(npm_closure)
  [ "${#pkgs[@]}" -gt 0 ] || die "prepare node_modules: deno info listed no npm packages"
  for p in "${pkgs[@]}"; do [ -d "$p" ] || die "prepare node_modules: $p is missing"; done
  local links=()
  for p in node_modules/* node_modules/@*/*; do
    [ -L "$p" ] || continue
    for q in "${pkgs[@]}"; do
      case "$(readlink "$p")" in *"${q#node_modules/}"/*) links+=("$p") ;; esac
    done
  done
  local ortn="node_modules/.deno/onnxruntime-node@$ORT_VERSION/node_modules/onnxruntime-node"
  local ortw="node_modules/.deno/onnxruntime-web@$ORT_VERSION/node_modules/onnxruntime-web"
  # onnxruntime-web's dist holds a dozen builds with a 14-28 MB wasm each: keep the entry
  # files that the scripts' imports resolve to (always `onnxruntime-web/webgpu`'s), and the
  # .mjs / .wasm files those load.
  local keep_web
  keep_web="$(ort_web_files "$ortw")" || die "prepare: resolve onnxruntime-web's entry files"
  keep_web+=" ${GPU_CHECK_ORT_WEB_EXTRA:-}"
  say "onnxruntime-web files: $keep_web"
  local excludes=(
    "--exclude=$ortn/bin/napi-v6/darwin" "--exclude=$ortn/bin/napi-v6/win32"
    "--exclude=$ortn/bin/napi-v6/linux/arm64"
    "--exclude=node_modules/.deno/protobufjs@*/node_modules/protobufjs/cli"
    "--exclude=*.map" "--exclude=*.md" "--exclude=$ortw/docs"
  )
  for p in "$ortw"/dist/*; do
    [[ " $keep_web " == *" $(basename "$p") "* ]] || excludes+=("--exclude=$p")
  done
  tar -cf - "${excludes[@]}" node_modules/.deno/.setup-cache.bin "${pkgs[@]}" "${links[@]}" |
    xz -6 -T0 >"$dir/node_modules.tar.xz" || die "prepare node_modules.tar.xz: tar failed"

  {
    echo "# made by tools/gpu_check.sh prepare, $(date -u +%FT%TZ)"
    (cd "$dir" && du -b deno.xz debs/*.deb node_modules.tar.xz)
    echo "packages: ${#pkgs[@]} (${pkgs[*]##*/})"
  } >"$dir/MANIFEST"
  local tree carry
  tree="$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)"
  carry="$(size_of "$dir")"
  say "carry folder $dir:"
  (cd "$dir" && du -b deno.xz debs/*.deb node_modules.tar.xz) |
    while read -r b f; do printf '   %10s  %s\n' "$(mib "$b")" "$f" >&2; done
  say "carry $(mib "$carry") + working tree $(mib "$tree") = $(mib $((carry + tree))) (limit 64 MiB)"
  [ $((carry + tree)) -lt $((64 * 1048576)) ] || die "prepare: over the 64 MiB a device call carries"
}

# ---------------------------------------------------------------------------------- run

unxz_to() { # file.xz dest: xz, else Python's lzma
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}

FIRST_FAIL=0
step() { # name seconds command...: runs with a timeout, keeps going, remembers a failure
  local name="$1" secs="$2" t0 rc
  shift 2
  say "$name (timeout ${secs}s)"
  t0=$(date +%s)
  timeout --kill-after=10 "$secs" "$@"
  rc=$?
  say "$name: exit $rc after $(($(date +%s) - t0)) s$([ "$rc" -eq 124 ] && echo ' (TIMED OUT)')"
  [ "$rc" -ne 0 ] && [ "$FIRST_FAIL" -eq 0 ] && FIRST_FAIL=$rc
  return 0
}

run() {
  local dir=".gpu_carry"
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then dir="$1"; shift; fi
  local quick=() bench_args=()
  for a in "$@"; do
    if [ "$a" = "--quick" ]; then quick=(--quick); else bench_args+=("$a"); fi
  done
  local t_start
  t_start=$(date +%s)
  mkdir -p "$WORK/bin" "$WORK/prefix" "$WORK/deno_dir" "$WORK/xdg" || die "run: mkdir $WORK failed"
  chmod 700 "$WORK/xdg"

  # Deno: the carried binary, else the one on PATH (this machine).
  if [ -s "$dir/deno.xz" ]; then
    if [ ! -x "$WORK/bin/deno" ] || [ "$dir/deno.xz" -nt "$WORK/bin/deno" ]; then
      say "unpacking deno"
      unxz_to "$dir/deno.xz" "$WORK/bin/deno.part" && chmod +x "$WORK/bin/deno.part" &&
        mv "$WORK/bin/deno.part" "$WORK/bin/deno" || die "run: unpacking $dir/deno.xz failed"
    fi
    export PATH="$WORK/bin:$PATH"
  fi
  command -v deno >/dev/null || die "run: no deno (run \`tools/gpu_check.sh prepare\` first)"

  # The Vulkan loader: the system's, else the carried .debs.
  if [ -z "${GPU_CHECK_CARRIED_LOADER:-}" ] && ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
    say "Vulkan loader: the system's ($(ldconfig -p | grep -m1 'libvulkan\.so\.1 ' | awk '{print $NF}'))"
  else
    local deb
    for deb in "$dir"/debs/*.deb; do
      [ -e "$deb" ] || die "run: no Vulkan loader on this machine and no .deb in $dir/debs"
      dpkg-deb -x "$deb" "$WORK/prefix" || die "run: dpkg-deb -x $deb failed"
    done
    say "Vulkan loader: carried ($(ls "$WORK"/prefix/usr/lib/x86_64-linux-gnu/libvulkan.so.1))"
    export LD_LIBRARY_PATH="$WORK/prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  # The driver: NVIDIA's ICD where the machine has it, else whatever Mesa installed.
  if [ -f "$NVIDIA_ICD" ]; then
    export VK_ICD_FILENAMES="$NVIDIA_ICD" VK_DRIVER_FILES="$NVIDIA_ICD"
    local lib
    for lib in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
      [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    say "Vulkan driver: NVIDIA ($NVIDIA_ICD: $(tr -d '\n ' <"$NVIDIA_ICD" | cut -c1-160))"
  elif ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    say "Vulkan driver: no NVIDIA ICD; Mesa's: $(ls /usr/share/vulkan/icd.d/ | tr '\n' ' ')"
  else
    say "Vulkan driver: none found: WebGPU will find no adapter (the engine falls back to cpu)"
  fi

  # npm packages: the tree's node_modules, else the carried tarball.
  if [ ! -d node_modules/.deno/onnxruntime-web@$ORT_VERSION ]; then
    [ -s "$dir/node_modules.tar.xz" ] || die "run: no node_modules and no $dir/node_modules.tar.xz"
    say "unpacking node_modules"
    unxz_to "$dir/node_modules.tar.xz" "$WORK/node_modules.tar" && tar -xf "$WORK/node_modules.tar" &&
      rm -f "$WORK/node_modules.tar" || die "run: unpacking node_modules failed"
  fi
  export DENO_DIR="$WORK/deno_dir" DENO_NO_UPDATE_CHECK=1 XDG_RUNTIME_DIR="$WORK/xdg"
  # `auto` (deno.json) would want every package of the lockfile; `manual` takes
  # node_modules as it is, and --cached-only never asks the network.
  local offline=(--node-modules-dir=manual --cached-only)
  # Deno spawns a program named in --allow-run=... only without LD_LIBRARY_PATH in its
  # environment; with the carried loader or NVIDIA's lib64 on it, bench:gpu needs all of
  # --allow-run to start nvidia-smi and python3.
  local perms=(-P=gpu)
  [ -n "${LD_LIBRARY_PATH:-}" ] && perms+=(--allow-run)

  say "machine: $(uname -m), $(nproc) CPUs, $(deno --version | head -1)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader >&2
  else
    say "no nvidia-smi"
  fi
  step "adapter" 60 deno eval --quiet "${offline[@]}" '
    const a = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
    if (!a) { console.log("no WebGPU adapter"); Deno.exit(3); }
    console.log("WebGPU adapter:", JSON.stringify(a.info), "features:", [...a.features].join(" "));'
  if [ ${#quick[@]} -gt 0 ]; then
    step "parity (quick)" 150 deno run "${perms[@]}" "${offline[@]}" tools/gpu_parity.ts --quick
    step "bench:gpu (quick)" 250 deno run "${perms[@]}" "${offline[@]}" tools/bench_gpu.ts \
      --quick --budget-s 200 "${bench_args[@]}"
  else
    # 60 + 100 + 290 s at most, with the unpacking under 8 minutes; the benchmark stops
    # starting rows after 230 s and still prints its table.
    step "parity S, M" 100 deno run "${perms[@]}" "${offline[@]}" tools/gpu_parity.ts
    step "bench:gpu" 290 deno run "${perms[@]}" "${offline[@]}" tools/bench_gpu.ts \
      --budget-s 230 "${bench_args[@]}"
  fi
  say "done in $(($(date +%s) - t_start)) s, first failing exit status: $FIRST_FAIL"
  return "$FIRST_FAIL"
}

mode="${1:-}"
[ $# -gt 0 ] && shift
case "$mode" in
  prepare) prepare "$@" ;;
  run)
    if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
      run "$@" 2>&1 | tee "$OUT/gpu_check.log"
      exit "${PIPESTATUS[0]}"
    fi
    run "$@"
    ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
