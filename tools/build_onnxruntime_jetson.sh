#!/usr/bin/env bash
# UNTESTED: no session of this project has run this script on a Jetson. It follows
# onnxruntime's own build instructions (docs/build/eps.md, "NVIDIA Jetson" and "TensorRT";
# js/node/script/build.ts for the Node.js binding) and is a starting point, not a
# verified recipe. Expect a first run to need fixes; say what they were in docs/jetson.md.
#
# The route to CUDA / TensorRT on a Jetson: onnxruntime-node's linux-arm64 package is
# CPU-only, so build onnxruntime (the same version as the onnxruntime-node this project
# pins, 1.30.0) on the Jetson with the CUDA and TensorRT execution providers and the
# Node.js binding, then put the binding and its libraries where onnxruntime-node loads its
# linux/arm64 files. `model.execution_providers: [tensorrt, cuda, cpu]` then finds them
# (pipelines/jetson.yaml).
#
#   tools/build_onnxruntime_jetson.sh check            what the Jetson has (L4T, CUDA, TensorRT)
#   tools/build_onnxruntime_jetson.sh build [OUT]      clone + build (hours); OUT default
#                                                      /opt/onnxruntime-jetson
#   tools/build_onnxruntime_jetson.sh install [OUT]    copy OUT/bin into this checkout's
#                                                      node_modules (again after `deno install`)
#   tools/build_onnxruntime_jetson.sh verify           list the backends, run the GPU parity
#
# Environment: ORT_VERSION (1.30.0), CUDA_HOME (/usr/local/cuda), CUDNN_HOME and
# TENSORRT_HOME (/usr/lib/aarch64-linux-gnu, where JetPack's .debs put them),
# CUDA_ARCHS (87: Orin; 110 for Thor on JetPack 7), JOBS (2: the build needs about 2 GB
# of memory per job; add swap on 8 GB boards), SRC (/tmp/onnxruntime-src), ORT_EXTRA_FLAGS
# (more build.sh flags, e.g. --use_webgpu for onnxruntime's own WebGPU provider through
# Dawn on the Jetson's Vulkan driver).
#
# Needs on the Jetson: JetPack 6.1 or later (CUDA 12.6, cuDNN 9, TensorRT 10; onnxruntime
# 1.30 no longer builds against JetPack 5's CUDA 11.4 / TensorRT 8.5 as far as its docs
# say), git, python3, cmake >= 3.28 (pip install cmake if apt's is older), build-essential,
# Node.js >= 20 with npm (the binding is built with cmake-js), network for the clone and
# for npm's build dependencies.
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.30.0}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
CUDNN_HOME="${CUDNN_HOME:-/usr/lib/aarch64-linux-gnu}"
TENSORRT_HOME="${TENSORRT_HOME:-/usr/lib/aarch64-linux-gnu}"
CUDA_ARCHS="${CUDA_ARCHS:-87}"
JOBS="${JOBS:-2}"
SRC="${SRC:-/tmp/onnxruntime-src}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORT_NODE="$ROOT/node_modules/.deno/onnxruntime-node@$ORT_VERSION/node_modules/onnxruntime-node"

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'Cannot %s\n' "$*" >&2; exit 1; }

check() {
  [ "$(uname -m)" = aarch64 ] || die "build for a Jetson here: this machine is $(uname -m)"
  if [ -f /etc/nv_tegra_release ]; then say "L4T: $(head -1 /etc/nv_tegra_release)"
  else say "no /etc/nv_tegra_release: not a Jetson (or not JetPack)"; fi
  [ -x "$CUDA_HOME/bin/nvcc" ] || die "find nvcc in $CUDA_HOME/bin (set CUDA_HOME; apt install nvidia-jetpack)"
  say "CUDA: $("$CUDA_HOME/bin/nvcc" --version | tail -1)"
  local h
  h="$(ls /usr/include/aarch64-linux-gnu/NvInferVersion.h /usr/include/NvInferVersion.h 2>/dev/null | head -1 || true)"
  [ -n "$h" ] || die "find TensorRT's headers (NvInferVersion.h): apt install nvidia-tensorrt-dev"
  say "TensorRT: $(grep -E '#define (NV_TENSORRT_MAJOR|NV_TENSORRT_MINOR|NV_TENSORRT_PATCH)' "$h" | awk '{print $3}' | paste -sd.)"
  ls "$CUDNN_HOME"/libcudnn.so* >/dev/null 2>&1 || die "find cuDNN in $CUDNN_HOME (set CUDNN_HOME)"
  say "cuDNN: $(ls "$CUDNN_HOME"/libcudnn.so.* | head -1)"
  local cm
  cm="$(cmake --version 2>/dev/null | head -1 | awk '{print $3}')" || true
  say "cmake: ${cm:-missing} (3.28 or later)"
  command -v node >/dev/null && command -v npm >/dev/null ||
    die "find node and npm (the Node.js binding is built with cmake-js): install Node.js 20 or later"
  say "node: $(node --version)"
}

build() {
  local out="${1:-/opt/onnxruntime-jetson}"
  check
  if [ ! -d "$SRC/.git" ]; then
    git clone --depth 1 --branch "v$ORT_VERSION" --recursive https://github.com/microsoft/onnxruntime "$SRC"
  fi
  local bdir="$SRC/build/Linux"
  export PATH="$CUDA_HOME/bin:$PATH" CUDACXX="$CUDA_HOME/bin/nvcc"
  local root_flag=()
  [ "$(id -u)" -eq 0 ] && root_flag=(--allow_running_as_root)
  # --use_tensorrt implies the CUDA provider; both are shared provider libraries
  # (libonnxruntime_providers_{shared,cuda,tensorrt}.so) loaded from beside libonnxruntime.so.
  # --build_nodejs runs npm ci in js/, js/common and js/node, then js/node's
  # `npm run build -- --arch=arm64 --use_cuda --use_tensorrt ...` (cmake/onnxruntime_nodejs.cmake),
  # which puts the binding and libonnxruntime.so into js/node/bin/napi-v6/linux/arm64.
  say "building onnxruntime $ORT_VERSION (CUDA + TensorRT, sm_$CUDA_ARCHS, $JOBS jobs, Node.js binding): hours"
  (cd "$SRC" && ./build.sh "${root_flag[@]}" \
    --config Release --update --build --parallel "$JOBS" --nvcc_threads 1 \
    --skip_tests --build_shared_lib --build_nodejs \
    --use_cuda --cuda_home "$CUDA_HOME" --cudnn_home "$CUDNN_HOME" \
    --use_tensorrt --tensorrt_home "$TENSORRT_HOME" \
    ${ORT_EXTRA_FLAGS:-} \
    --cmake_extra_defines "CMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS" \
    onnxruntime_BUILD_UNIT_TESTS=OFF \
    onnxruntime_USE_FLASH_ATTENTION=OFF onnxruntime_USE_MEMORY_EFFICIENT_ATTENTION=OFF)

  local dist="$SRC/js/node/bin/napi-v6/linux/arm64"
  [ -f "$dist/onnxruntime_binding.node" ] || die "find the built binding in $dist"
  cp -a "$bdir"/Release/libonnxruntime_providers_{shared,cuda,tensorrt}.so "$dist/"
  mkdir -p "$out/bin"
  cp -a "$dist"/. "$out/bin/"
  say "built: $out/bin"
  ls -la "$out/bin" >&2
}

install_into() {
  local out="${1:-/opt/onnxruntime-jetson}"
  [ -f "$out/bin/onnxruntime_binding.node" ] || die "find $out/bin/onnxruntime_binding.node (run build first)"
  [ -d "$ORT_NODE" ] || (cd "$ROOT" && deno install) || die "install the npm packages (deno install)"
  local target="$ORT_NODE/bin/napi-v6/linux/arm64"
  if [ -d "$target" ] && [ ! -d "$target.cpu-only" ]; then cp -a "$target" "$target.cpu-only"; fi
  mkdir -p "$target"
  cp -a "$out/bin"/. "$target/"
  # onnxruntime-node loads libonnxruntime.so.1 beside the binding (rpath $ORIGIN).
  if [ ! -e "$target/libonnxruntime.so.1" ]; then
    local lib
    lib="$(ls "$target"/libonnxruntime.so.* | head -1)"
    ln -sf "$(basename "$lib")" "$target/libonnxruntime.so.1"
  fi
  say "installed into $target (the CPU-only files are in $target.cpu-only)"
}

verify() {
  cd "$ROOT"
  deno eval --quiet 'import * as ort from "onnxruntime-node";
    console.log("onnxruntime-node backends:", JSON.stringify(ort.listSupportedBackends()));'
  deno run -P=gpu tools/gpu_parity.ts --providers cuda,cpu --sizes s --paddings false
  deno run -P=gpu tools/gpu_parity.ts --providers tensorrt,cpu --sizes s --paddings false
}

case "${1:-}" in
  check) check ;;
  build) shift; build "$@" ;;
  install) shift; install_into "$@" ;;
  verify) verify ;;
  *) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
