#!/usr/bin/env bash
# Session 11, call 7: decode units listed group by group (balanced warps) against main 1f5fd9a.
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 540 - ($(date +%s) - t0) )); }
trap 'cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg .device/base $BB base && ninja -C $BB -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B new && ninja -C $B -j10 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
timeout 120 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests new rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|Failure|rel_error|Which is" $LOG/tests.txt | head -30
for e in STARKV_NO_NARROW_FOLD STARKV_NO_WIDE_RECON; do
env $e=1 timeout 60 $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*:*CudaQuantized*:*CudaLongSplit*:*CudaFoldSmallTile*' > $LOG/tests_$e.txt 2>&1; echo "$e tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED" $LOG/tests_$e.txt | head -5; done
el tests
run() { # label shape comp bits batch [env]
  local bench=$B/bench/decode_bench; case $1 in base*) bench=$BB/bench/decode_bench;; esac
  env $6 timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt
}
: > $LOG/ab.txt
for c in "llama2-7b 75% 4/3 16" "llama2-7b 60% 4/3 16" "llama2-7b 50% 4/3 16" "llama2-7b 75% 4/4 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% 4/3 16" "llama3-8b 50% 4/3 16" "llama2-7b 75% 4/3 64" "llama3-8b 75% 4/3 64" "llama2-7b 75% 4/3 16" "llama3-8b 75% 4/3 16"; do
  for m in base new; do run $m $c; done
done
run newNoWgmma llama2-7b 75% 4/3 16 STARKV_NO_WGMMA=1
run baseNoWgmma llama2-7b 75% 4/3 16 STARKV_NO_WGMMA=1
el ab
grep -v append $LOG/ab.txt
for k in fold_scores decode_values; do
  timeout 120 ncu --clock-control none --kernel-name regex:$k --launch-skip 1 --launch-count 1 --section SourceCounters --section WarpStateStats --section LaunchStats --section Occupancy \
    --export $LOG/$k -f $B/bench/decode_bench --shape llama2-7b --comp 75% --bits 4/3 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/ncu_$k.txt 2>&1
  ncu --import $LOG/$k.ncu-rep --page source --print-source sass --csv > $LOG/${k}_sass.csv 2>&1
  ncu --import $LOG/$k.ncu-rep --page details > $LOG/${k}_details.txt 2>&1; rm -f $LOG/$k.ncu-rep
  grep -E "fold_scores_kernel<|decode_values_kernel<|Duration|Issue Slots|Warp Cycles Per Issued|Registers Per|Achieved Occ" $LOG/${k}_details.txt | cut -c1-150 | head -8
done
el ncu
F='*CudaFoldWgmma*:*CudaSplitPath*:*CudaQuantizedRecon*'
T=$(left); [ $T -gt 20 ] && timeout $((T/2)) compute-sanitizer --tool memcheck $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $LOG/memcheck.txt
T=$(left); [ $T -gt 20 ] && timeout $T compute-sanitizer --tool racecheck $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -1 $LOG/racecheck.txt
el done
