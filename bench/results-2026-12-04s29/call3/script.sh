#!/usr/bin/env bash
# Session 29 call 3. The working tree = main cb1c480 (the final kernels of issue 5). compute-sanitizer over the GPU tests:
# memcheck on bench/run_gpu.sh's subset plus every fold-wgmma, quantized and wide-recon case; racecheck on run_gpu.sh's
# subset plus the narrow quantized folds (CudaFoldWgmma /5 /7) and the compact-rows recon cases (CudaWideRecon /5 /8).
set -o pipefail
B=/tmp/b-san
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 starkv_gpu_tests > /tmp/build3.txt 2>&1 || { grep error -A3 /tmp/build3.txt | head; exit 1; }
T=$B/tests/starkv_gpu_tests
MC='*CudaFoldWgmma*:*CudaQuantized*:*CudaWideRecon*:*CudaFoldSmallTile*/0:*CudaFoldSmallTile*/3:CudaBackend.Snapshots*:CudaBackend.Fork*:*CudaVsCpu16*/1:CudaBackend.DecodeStepPlans*:CudaBackend.QuantizedAppend*:*CudaSplitPath*/*:CudaBackend.ManyHeads*:*CudaDenseVsCpu*/1:*CudaDenseVsCpu*/3:CudaDenseLayers.DecodeStep*:*CudaDecodeSizedAppend*/1:*CudaDecodeSizedAppend*/4'
RC='*CudaFoldWgmma*/1:*CudaFoldWgmma*/4:*CudaFoldWgmma*/5:*CudaFoldWgmma*/7:*CudaFoldSmallTile*:*CudaQuantized*/2:*CudaVsCpu16*/3:*CudaSplitPath*/*:*CudaDenseVsCpu*/1:*CudaDenseVsCpu*/3:*CudaWideRecon*/1:*CudaWideRecon*/5:*CudaWideRecon*/8:*CudaDecodeSizedAppend*/2'
timeout 270 compute-sanitizer --tool memcheck --error-exitcode 1 $T --gtest_filter="$MC" > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"
grep -E "^\[  (PASSED|FAILED)|tests ran|ERROR SUMMARY" $OUT/memcheck.txt
timeout 220 compute-sanitizer --tool racecheck --error-exitcode 1 $T --gtest_filter="$RC" > $OUT/racecheck.txt 2>&1; echo "racecheck rc=$?"
grep -E "^\[  (PASSED|FAILED)|tests ran|RACECHECK SUMMARY|ERROR SUMMARY" $OUT/racecheck.txt
