#!/usr/bin/env bash
# Session 13, call 3 (reduced: no grid): wip/s13-pairbits 72aea29 (pair marks as register bits) against main f52bb6c
# (base): whole GPU suite on new, A/B two rounds, sanitizers on new (no grid: the session was near its end).
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c45.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg .device/base $BB base && ninja -C $BB -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B new && ninja -C $B -j10 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
timeout 200 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED" $LOG/tests.txt | head -20
run() { local bench=$B/bench/decode_bench; case $1 in base*) bench=$BB/bench/decode_bench;; esac
  timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% 4/3 16" "llama3-8b 75% 4/3 16" "llama2-7b 50% 4/3 16"; do for m in base new; do run $m $c; done; done; done
grep -v append $LOG/ab.txt
el ab
compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*:*CudaQuantized*:*CudaSplitPath*:*CudaLongSplit*/2:*CudaFoldWgmma*:*CudaFoldSmallTile*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $LOG/memcheck.txt
compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaQuantized*/1:*CudaQuantized*/2:*CudaSplitPath*:*CudaLongSplit*/2:*CudaWideRecon*:*CudaFoldWgmma*/1:*CudaFoldSmallTile*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -1 $LOG/racecheck.txt
el sanitizers
