#!/usr/bin/env bash
# The GPU check of issue 14 (item 5) as one command for a machine with an NVIDIA GPU and PyTorch
# (about 6-8 minutes on one GPU and 16 cores, most of it the build):
#   1. builds the addon against the libtorch of the machine's PyTorch (python3's torch, with
#      CUDA) with cmake and ninja, into $GPU_CHECK_OUT/build (no network needed);
#   2. runs scripts/cuda-check.mjs against it: the boundary, CPU-vs-CUDA agreement, train steps
#      (fp32, AMP, AMP + channelsLast), the whole pipeline on CUDA with schedule.amp on a small
#      COCO-format set and its student evaluated on both devices, and step throughput against
#      torchvision (+ AMP, + channels_last) on the same GPU; its output also goes to
#      $GPU_CHECK_OUT/cuda-check.log;
#   3. with GPU_CHECK_NATIVE=1, also native/tests/gpu_check.cc (the model code in C++ alone: NMS,
#      R50 agreement, AMP training, timings; a second build of the model files).
# Exit status: that of cuda-check.mjs (1 on any failed check), 2 when something it needs is missing.
#
# A GPU machine without Node, npm or network: on a machine with Node 20 and this checkout
# installed and type-built (npm ci && npm run build:ts), run `scripts/gpu-check.sh pack` first. It
# writes .gpu/ (ignored by git): the node binary, Node-API's headers, the runtime node_modules,
# dist/ and nlohmann/json.hpp, compressed; take .gpu along with the checkout, and the check unpacks
# what the GPU machine lacks.
#
# GPU_CHECK_OUT (default /tmp/mtpd-gpu-check), GPU_CHECK_CMAKE_ARGS (more cmake arguments),
# GPU_CHECK_PYTHON (default python3), NLOHMANN_INCLUDE (a folder holding nlohmann/json.hpp),
# GLOO_INCLUDE_DIR (a folder holding gloo/, where libtorch does not ship it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${GPU_CHECK_OUT:-/tmp/mtpd-gpu-check}
PY=${GPU_CHECK_PYTHON:-python3}

if [ "${1:-}" = pack ]; then
  command -v node >/dev/null || { echo "pack: needs node on PATH"; exit 2; }
  [ -f dist/cli.js ] || { echo "pack: dist/ is missing (npm run build:ts first)"; exit 2; }
  rm -rf .gpu && mkdir -p .gpu/include
  NODE_BIN=$(readlink -f "$(command -v node)")
  xz -T0 -9 -c "$NODE_BIN" >.gpu/node.xz
  # Node-API's C headers (node-addon-api's napi.h needs no other Node header)
  NODE_INC=$(node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")
  [ -f "$NODE_INC/node_api.h" ] || NODE_INC=/usr/include/node
  cp "$NODE_INC"/node_api.h "$NODE_INC"/node_api_types.h "$NODE_INC"/js_native_api.h "$NODE_INC"/js_native_api_types.h .gpu/include/
  for h in nlohmann/json.hpp nlohmann/json_fwd.hpp; do
    for d in ${NLOHMANN_INCLUDE:-} /usr/include /usr/local/include; do
      if [ -f "$d/$h" ]; then mkdir -p ".gpu/include/$(dirname $h)"; cp "$d/$h" ".gpu/include/$h"; break; fi
    done
  done
  [ -f .gpu/include/nlohmann/json.hpp ] || { echo "pack: nlohmann/json.hpp not found (set NLOHMANN_INCLUDE)"; exit 2; }
  # Gloo's headers for c10d, where the GPU machine's libtorch does not ship them (Debian: libgloo-dev)
  if [ -f /usr/include/gloo/algorithm.h ]; then cp -r /usr/include/gloo .gpu/include/; fi
  # the runtime dependencies (npm's production tree) and node-addon-api for the build
  npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s|^$ROOT/||p" | grep '^node_modules/' | sort -u >.gpu/modules.txt
  tar -cJf .gpu/node_modules.tar.xz -T .gpu/modules.txt
  tar -cJf .gpu/dist.tar.xz dist
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>"$(git rev-parse --git-path info/exclude)"
  du -sh .gpu
  echo "pack: take .gpu along with the checkout (it is ignored by git)"
  exit 0
fi

mkdir -p "$OUTDIR"
# --- what the machine may lack ---------------------------------------------------------------
if ! command -v node >/dev/null; then
  [ -f .gpu/node.xz ] || { echo "FAIL no node on PATH and no .gpu/node.xz (run scripts/gpu-check.sh pack where Node is)"; exit 2; }
  mkdir -p "$OUTDIR/bin" && xz -dc .gpu/node.xz >"$OUTDIR/bin/node" && chmod +x "$OUTDIR/bin/node"
  export PATH="$OUTDIR/bin:$PATH"
fi
[ -d node_modules/zod ] || { [ -f .gpu/node_modules.tar.xz ] && tar -xJf .gpu/node_modules.tar.xz; } || { echo "FAIL node_modules missing (npm ci, or pack)"; exit 2; }
[ -f dist/cli.js ] || { [ -f .gpu/dist.tar.xz ] && tar -xJf .gpu/dist.tar.xz; } || { echo "FAIL dist/ missing (npm run build:ts, or pack)"; exit 2; }
NODE_INC=$(node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")
[ -f "$NODE_INC/node_api.h" ] || NODE_INC=/usr/include/node
[ -f "$NODE_INC/node_api.h" ] || NODE_INC=$ROOT/.gpu/include
[ -f "$NODE_INC/node_api.h" ] || { echo "FAIL Node-API headers (node_api.h) not found (pack them)"; exit 2; }
EXTRA_INC="$NODE_INC"
if [ -n "${NLOHMANN_INCLUDE:-}" ]; then EXTRA_INC="$EXTRA_INC;$NLOHMANN_INCLUDE"; fi
if [ -f .gpu/include/nlohmann/json.hpp ]; then EXTRA_INC="$EXTRA_INC;$ROOT/.gpu/include"; fi
TORCH=$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))')
if [ ! -f "$TORCH/include/gloo/algorithm.h" ] && [ -z "${GLOO_INCLUDE_DIR:-}" ] && [ -f .gpu/include/gloo/algorithm.h ]; then
  export GLOO_INCLUDE_DIR="$ROOT/.gpu/include"
fi
"$PY" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count()); sys.exit(0 if torch.cuda.is_available() else 3)' ||
  { echo "FAIL $PY's torch sees no CUDA device"; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

# --- 1. the addon against this PyTorch's libtorch ----------------------------------------------
t0=$(date +%s)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# CMAKE_JS_INC: what cmake-js would pass (Node's headers); the library goes where MTPD_ADDON points.
# shellcheck disable=SC2086
cmake -S . -B "$OUTDIR/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DTorch_DIR="$TORCH/share/cmake/Torch" \
  "-DCMAKE_JS_INC=$EXTRA_INC" -DNODE_ADDON_API_DIR="$(node -p "require('node-addon-api').include_dir")" \
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$OUTDIR/build/Release" ${GPU_CHECK_CMAKE_ARGS:-} >"$OUTDIR/cmake.log" 2>&1 ||
  { tail -40 "$OUTDIR/cmake.log"; echo "FAIL cmake (log: $OUTDIR/cmake.log)"; exit 2; }
cmake --build "$OUTDIR/build" --parallel "$(nproc)" >"$OUTDIR/build.log" 2>&1 ||
  { grep -m 20 -B2 -A8 'error' "$OUTDIR/build.log" | head -80; echo "FAIL build (log: $OUTDIR/build.log)"; exit 2; }
export MTPD_ADDON="$OUTDIR/build/Release/mtpd.node"
echo "time build: $(($(date +%s) - t0)) s ($MTPD_ADDON)"

# --- 2. the check through Node ----------------------------------------------------------------
set +e
MTPD_CHECK_PYTHON="$PY" node scripts/cuda-check.mjs 2>&1 | tee "$OUTDIR/cuda-check.log"
status=${PIPESTATUS[0]}
set -e

# --- 3. optional: the model code alone in C++ -------------------------------------------------
if [ "${GPU_CHECK_NATIVE:-0}" = 1 ]; then
  ABI=$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  NATIVE_OUT="$OUTDIR/native"
  mkdir -p "$NATIVE_OUT"
  INC="-Inative -I$TORCH/include -I$TORCH/include/torch/csrc/api/include ${NLOHMANN_INCLUDE:+-I$NLOHMANN_INCLUDE} -I$ROOT/.gpu/include"
  FLAGS="-O2 -std=c++17 -fPIC -D_GLIBCXX_USE_CXX11_ABI=$ABI $INC -w"
  # the model, op and training files (no binding, distillation or data-parallel code)
  SRCS="native/core/registry.cc native/core/state_dict.cc native/core/runtime.cc native/models/*.cc native/ops/*.cc native/train/*.cc native/tests/gpu_check.cc"
  # shellcheck disable=SC2086
  ls $SRCS | xargs -P "$(nproc)" -I{} sh -c 'o='"$NATIVE_OUT"'/$(echo {} | tr / _).o; g++ '"$FLAGS"' -c {} -o $o' &&
    g++ "$NATIVE_OUT"/*.o -o "$NATIVE_OUT/gpu_check" -L"$TORCH/lib" -Wl,-rpath,"$TORCH/lib" -Wl,--no-as-needed -ltorch -ltorch_cuda -ltorch_cpu -lc10_cuda -lc10 &&
    "$NATIVE_OUT/gpu_check" || status=1
fi
exit "$status"
