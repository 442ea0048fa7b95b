#!/usr/bin/env bash
# Builds native/tests/gpu_check.cc with the model code against the libtorch of the local PyTorch
# install (which has CUDA) and runs it. For a machine with an NVIDIA GPU; the Node addon is not
# needed. nlohmann/json: the system header, or $NLOHMANN_INCLUDE.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
ABI=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
OUTDIR=${GPU_CHECK_BUILD:-/tmp/mtpd-gpu-check}
mkdir -p "$OUTDIR"
FLAGS="-O2 -std=c++17 -fPIC -D_GLIBCXX_USE_CXX11_ABI=$ABI -Inative -I$TORCH/include -I$TORCH/include/torch/csrc/api/include ${NLOHMANN_INCLUDE:+-I$NLOHMANN_INCLUDE} -w"
SRCS="native/core/registry.cc native/core/state_dict.cc native/core/runtime.cc native/models/*.cc native/ops/*.cc native/train/*.cc native/tests/gpu_check.cc"
ls $SRCS | xargs -P "$(nproc)" -I{} sh -c 'o='"$OUTDIR"'/$(echo {} | tr / _).o; g++ '"$FLAGS"' -c {} -o $o'
g++ "$OUTDIR"/*.o -o "$OUTDIR/gpu_check" -L"$TORCH/lib" -Wl,-rpath,"$TORCH/lib" -Wl,--no-as-needed -ltorch -ltorch_cuda -ltorch_cpu -lc10_cuda -lc10
"$OUTDIR/gpu_check"
