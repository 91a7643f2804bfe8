#!/usr/bin/env bash
# Prepared in session 14, not run (the device time was spent): run from the root of main 6e0afa6 or later with
#   git apply bench/results-2026-12-03s14/stage_alignment_experiment.patch
# The value kernel's row copies read 1.5x their bytes from L2 (call 7). Does the staged destination's alignment
# relative to the source cause it? Modes (one "base" build; "ca" a second build with -DSTARKV_EXPERIMENT_CA):
#   base: main;  s32: STARKV_EXPERIMENT_STAGE=32 (fp16 value rows staged at an odd multiple of 32 bytes: every
#   destination has its source's alignment mod 32);  r128: STARKV_EXPERIMENT_ROW_ALIGN=128 (rows padded to 128);
#   s128: both at 128 (destinations match sources mod 128; ldmatrix then has 8-way conflicts, so read its L2
#   counters, not its time);  ca: every 16-byte cp.async through L1 (.ca) instead of .cg.
# Then the same counters for cuDNN's and flash's SDPA kernels.
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S . -B $1 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "$2" > $LOG/cfg_$3.txt 2>&1; }
(cfg $BB "-DCMAKE_CUDA_FLAGS=" base && ninja -C $BB -j8 decode_bench starkv_gpu_tests > $LOG/build_base.txt 2>&1) &
cfg $B "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_CA" ca && ninja -C $B -j8 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
mode_env() { case $1 in s32) echo STARKV_EXPERIMENT_STAGE=32;; r128) echo STARKV_EXPERIMENT_ROW_ALIGN=128;;
  s128) echo "STARKV_EXPERIMENT_STAGE=128 STARKV_EXPERIMENT_ROW_ALIGN=128";; *) echo "X=0";; esac; }
bench_of() { [ $1 = ca ] && echo $B/bench/decode_bench || echo $BB/bench/decode_bench; }
run() { local m=$1; shift
  env $(mode_env $m) timeout 60 $(bench_of $m) --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama2-7b 50% fp16 16"; do for m in base s32 ca; do run $m $c; done; done; done
grep -v append $LOG/ab.txt
el ab
M=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_requests_srcunit_tex_op_read.sum,lts__t_sector_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed
for m in base s32 r128 s128 ca; do
  env $(mode_env $m) timeout 100 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 2 --launch-count 1 --metrics $M $(bench_of $m) --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_$m.txt 2>&1
  echo "== $m"; grep -E "gpu__time|dram__|lts__" $LOG/ncu_$m.txt | cut -c1-110
done
for bits in 4/3; do  # the quantized (cp.async-staged) fold and value kernel at base: do they read extra sectors too?
  timeout 100 ncu --clock-control none --kernel-name regex:"decode_values|fold" --launch-skip 4 --launch-count 2 --metrics $M $BB/bench/decode_bench --shape llama2-7b --comp 75% --bits $bits --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_base_43.txt 2>&1
  echo "== base 4/3"; grep -E "decode_values|fold_scores|gpu__time|dram__|lts__" $LOG/ncu_base_43.txt | cut -c1-110
done
el ncu
for m in s32 s128; do env $(mode_env $m) timeout 200 $BB/tests/starkv_gpu_tests > $LOG/tests_$m.txt 2>&1; echo "tests $m rc=$?"; grep -E "^\[  (PASSED|FAILED)" $LOG/tests_$m.txt | head -5; done
el tests
PYTHONUNBUFFERED=1 timeout 120 ncu --clock-control none --launch-skip 2 --launch-count 14 --metrics $M,launch__grid_size \
  python3 bench/sdpa_baseline.py --shape llama2-7b --batch 16 --context 32768 --reps 3 --out /tmp/s.jsonl > $LOG/ncu_sdpa.txt 2>&1
grep -E "^  \S|gpu__time|dram__bytes|lts__t_sectors|lts__throughput|dram__throughput" $LOG/ncu_sdpa.txt | cut -c1-110 | head -90
el sdpa
