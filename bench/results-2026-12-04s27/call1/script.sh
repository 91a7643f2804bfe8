#!/usr/bin/env bash
# Prepared in session 26 for session 27's first call (run from a main checkout at 31a3f01 or later with kernels as 5575c11).
# 1) memcheck + racecheck on main's kernels (5575c11, the relative RoPE: not yet sanitizer-checked).
# 2) v48 = wip/s27-relrope-48 04c899e (the relative RoPE also at fp16 padded rank 48): GPU suite, A/B two rounds, memcheck subset.
set -o pipefail
LOG=/tmp/logs1; rm -rf $LOG /tmp/src-v48; mkdir -p $LOG /tmp/src-v48
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C /tmp/src-v48; rm -rf /tmp/src-v48/kernels /tmp/src-v48/src/cuda
tar xf .device/kernels_relrope48_04c899e.tar -C /tmp/src-v48
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B /tmp/b-base $CFG > /dev/null 2>&1; cmake -S /tmp/src-v48 -B /tmp/b-v48 $CFG > /dev/null 2>&1
( ninja -C /tmp/b-base -j8 decode_bench starkv_gpu_tests > $LOG/build0.txt 2>&1; echo "base rc=$?" ) &
( ninja -C /tmp/b-v48 -j8 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "v48 rc=$?" ) &
wait; grep -E " error" -A3 $LOG/build*.txt | head -20; rm -f $LOG/build*.txt
el built
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 1 /tmp/b-base/tests/starkv_gpu_tests --gtest_filter='*FoldWgmma*:*WideRecon*:*SplitPath*:*CudaVsCpu16*:*CudaQuantized*:*CudaLongSplit*' > $LOG/memcheck_main.txt 2>&1; echo "main memcheck rc=$?"; tail -2 $LOG/memcheck_main.txt
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 1 /tmp/b-base/tests/starkv_gpu_tests --gtest_filter='*WideRecon*/0:*WideRecon*/3:*WideRecon*/4:*CudaQuantized*/2:*CudaLongSplit*/0:*CudaLongSplit*/2' > $LOG/racecheck_main.txt 2>&1; echo "main racecheck rc=$?"; tail -2 $LOG/racecheck_main.txt
el sanitizers
timeout 90 /tmp/b-v48/tests/starkv_gpu_tests > $LOG/tests_v48.txt 2>&1; echo "v48 tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_v48.txt | head
run() { local m=$1; shift; timeout 40 /tmp/b-$m/bench/decode_bench --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 16 32768 60%" "llama3-8b fp16 64 32768 60%" "llama3-8b fp16 1 32768 60%" "llama3-8b fp16 16 4096 60%" "llama3-8b fp16 16 32768 75%" "llama3-8b fp16 16 32768 50%"; do
    for m in base v48; do left 480 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 /tmp/b-v48/tests/starkv_gpu_tests --gtest_filter='*WideRecon*/3:*CudaLongSplit*/0' > $LOG/racecheck_v48.txt 2>&1; echo "v48 racecheck rc=$?"; tail -2 $LOG/racecheck_v48.txt
el done
