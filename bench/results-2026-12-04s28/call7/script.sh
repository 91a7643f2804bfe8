#!/usr/bin/env bash
# Session 28 call 7. Trees: main = 0ab265f's kernels (.device/k_main.tar); new = the working tree, the change as it
# lands: compact rows only in the instance that needs them (wgmma, recon, quantized keys, padded rank 48); every other
# fold instance compiles to main's PTX (checked locally, sm_90a and sm_90). GPU suite on new; the rows that change;
# memcheck over the wide-recon suite and racecheck on its quantized rank-48 cases.
set -o pipefail
bench/ab_trees.sh --rounds 2 --reps 20 --seconds 200 --tests new main=.device/k_main.tar new=. -- \
  "llama3-8b 4/3 16 32768 60%" "llama3-8b 4/4 16 32768 60%" "llama3-8b 4/3 64 32768 60%" "llama3-8b 4/3 1 32768 60%" "llama3-8b 4/3 16 4096 60%"
T=/tmp/ab-build-new/tests/starkv_gpu_tests
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 1 $T --gtest_filter='*CudaWideRecon*:*CudaQuantized*/1' > /tmp/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -3 /tmp/memcheck.txt
timeout 100 compute-sanitizer --tool racecheck --error-exitcode 1 $T --gtest_filter='*CudaWideRecon*/5:*CudaWideRecon*/8' > /tmp/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -3 /tmp/racecheck.txt
cat /tmp/memcheck.txt /tmp/racecheck.txt | grep -E "RUN|OK \]|ERROR SUMMARY|RACECHECK SUMMARY|Error|Hazard" | gzip > $OUT/ab/sanitizers.txt.gz
