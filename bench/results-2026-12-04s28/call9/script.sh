#!/usr/bin/env bash
# Session 28 call 9 (main 250e176, kernels as 3621033): the wide-recon and quantized suites in the model's chunks
# (STARKV_NO_WIDE_RECON=1: compact rows of 2, 1 and 4 KV heads per chunk), plainly and under memcheck.
set -o pipefail
B=/tmp/b9
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 starkv_gpu_tests > /tmp/build9.txt 2>&1 || { grep error -A3 /tmp/build9.txt | head; exit 1; }
F='*CudaWideRecon*:*CudaQuantized*:*CudaFoldWgmma*'
STARKV_NO_WIDE_RECON=1 timeout 120 $B/tests/starkv_gpu_tests --gtest_filter="$F" > $OUT/no_wide_recon_tests.txt 2>&1; echo "no-wide tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $OUT/no_wide_recon_tests.txt
STARKV_NO_WIDE_RECON=1 timeout 200 compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*' > /tmp/mc.txt 2>&1; echo "no-wide memcheck rc=$?"; tail -2 /tmp/mc.txt
STARKV_NO_WIDE_RECON=1 timeout 100 compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*/5:*CudaWideRecon*/8' > /tmp/rc.txt 2>&1; echo "no-wide racecheck rc=$?"; tail -2 /tmp/rc.txt
cat /tmp/mc.txt /tmp/rc.txt | grep -E "RUN|OK \]|ERROR SUMMARY|RACECHECK SUMMARY|Error|Hazard" > $OUT/no_wide_recon_sanitizers.txt
