#!/usr/bin/env bash
# Session 14, call 5: rows padded to 64 / 128 bytes (experiment env STARKV_EXPERIMENT_ROW_ALIGN in row_layout.cpp) against
# 16 (main): A/B two rounds; ncu of the value kernel and fold at 128.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c55.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
run() { local m=$1; shift; local a=${m#a}; [ $m = base ] && a=16
  STARKV_EXPERIMENT_ROW_ALIGN=$a timeout 60 $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama2-7b 50% fp16 16" "llama2-7b 60% fp16 16" "llama3-8b 75% 4/3 16"; do for m in base a64 a128 a256; do run $m $c; done; done; done
grep -v append $LOG/ab.txt
el ab
STARKV_EXPERIMENT_ROW_ALIGN=128 timeout 240 $B/tests/starkv_gpu_tests > $LOG/tests_a128.txt 2>&1; echo "tests a128 rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED" $LOG/tests_a128.txt | head -10
for a in 16 128; do
STARKV_EXPERIMENT_ROW_ALIGN=$a ncu --clock-control none --kernel-name regex:"decode_values|fold" --launch-skip 4 --launch-count 2 --metrics gpu__time_duration.sum,dram__bytes_read.sum,lts__t_bytes.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_requests_srcunit_tex_op_read.sum,lts__t_sector_hit_rate.pct,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__throughput.avg.pct_of_peak_sustained_elapsed \
  $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_a$a.txt 2>&1
grep -E "decode_values|fold_scores|gpu__time|dram__|lts__" $LOG/ncu_a$a.txt | cut -c1-110
done
el ncu
