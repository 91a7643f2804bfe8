#!/usr/bin/env bash
# Session 14, call 3: where the fold-and-values kernel's illegal instruction is (compute-sanitizer, -lineinfo).
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c53.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DCMAKE_CUDA_FLAGS=-lineinfo \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
STARKV_FUSED_STEP=1 timeout 120 compute-sanitizer --tool memcheck --show-backtrace device $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldSmallTile*/1' > $LOG/san.txt 2>&1
grep -v "^\s*$" $LOG/san.txt | head -60
