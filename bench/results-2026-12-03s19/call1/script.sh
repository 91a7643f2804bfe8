#!/usr/bin/env bash
# Session 19 call 1. Working tree = main f33ea03 + long value blocks (STARKV_EXPERIMENT_VALUE_MT=4|5: the value kernel
# reads a wide joint value group in evenly split blocks of up to 512 / 640 channels, one CTA per SM) + their GPU tests.
# One build; env unset = main's behaviour. GPU tests (all: main's suite + CudaLongValueBlocks); A/B base / mt5 / mt4
# two rounds; ncu of the value kernel (Llama-2-like 75% fp16 b16) base / mt5; memcheck + racecheck of the new suite
# and the fold suites (closes session 18's final-tree gap).
set -o pipefail
B1=/tmp/b-new; LOG=/tmp/logs1; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
cmake -S . -B $B1 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B1 -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -40; exit 1; }
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -20
el tests
run() { local m=$1; shift; local env=""; [ $m != base ] && env="STARKV_EXPERIMENT_VALUE_MT=${m#mt}"
  env $env timeout 60 $B1/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do left 330 || break; for c in "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama2-7b 75% 4/3 16" "llama3-8b 75% fp16 16"; do for m in base mt5 mt4; do run $m $c; done; done; el "ab round $r"; done
cat $LOG/ab.txt
T="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__registers_per_thread"
left 420 && for m in base mt5; do env=""; [ $m != base ] && env="STARKV_EXPERIMENT_VALUE_MT=5"
  env $env timeout 45 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $B1/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_$m.txt 2>&1
  echo "== values $m"; grep -E "gpu__time|sm__|dram__|lts__|launch__" $LOG/ncu_values_$m.txt | cut -c1-120
done
el ncu
left 460 && timeout 90 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaLongValueBlocks*:*CudaFoldWgmma*:*CudaFoldSmallTile*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
el memcheck
left 530 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaLongValueBlocks*/0:*CudaLongValueBlocks*/4:*CudaLongValueBlocks*/6:*CudaFoldWgmma*/3:*CudaFoldWgmma*/7' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
