#!/usr/bin/env bash
# Session 14, call 8: the value kernel's row copies read 1.5x their bytes from L2 (call 7). Experiment: cp.async.ca
# (through L1) instead of .cg for every 16-byte cp.async (-DSTARKV_EXPERIMENT_CA, build "ca"), and (env
# STARKV_EXPERIMENT_STAGE32, base build, "s32") fp16 value rows staged at an odd multiple of 32 bytes, against main ("base").
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c58.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S . -B $1 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "$2" > $LOG/cfg_$3.txt 2>&1; }
(cfg $BB "-DCMAKE_CUDA_FLAGS=" base && ninja -C $BB -j8 decode_bench starkv_gpu_tests > $LOG/build_base.txt 2>&1) &
cfg $B "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_CA" ca && ninja -C $B -j8 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
run() { local bench=$B/bench/decode_bench env=""; [ $1 != ca ] && bench=$BB/bench/decode_bench; [ $1 = s32 ] && env=STARKV_EXPERIMENT_STAGE32=1
  env $env timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama3-8b 75% 4/3 16" "llama2-7b 50% fp16 16"; do for m in base s32 ca; do run $m $c; done; done; done
grep -v append $LOG/ab.txt
el ab
M=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_requests_srcunit_tex_op_read.sum,lts__t_sector_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed
for m in base s32 ca; do bench=$B/bench/decode_bench env=""; [ $m != ca ] && bench=$BB/bench/decode_bench; [ $m = s32 ] && env=STARKV_EXPERIMENT_STAGE32=1
  env $env timeout 100 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 2 --launch-count 1 --metrics $M $bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_$m.txt 2>&1
  echo "== $m"; grep -E "gpu__time|dram__|lts__" $LOG/ncu_$m.txt | cut -c1-110
done
el ncu
timeout 200 $B/tests/starkv_gpu_tests > $LOG/tests_ca.txt 2>&1; echo "tests ca rc=$?"; grep -E "^\[  (PASSED|FAILED)" $LOG/tests_ca.txt | head -5
el tests
PYTHONUNBUFFERED=1 timeout 120 ncu --clock-control none --launch-skip 2 --launch-count 14 --metrics $M,launch__grid_size \
  python3 bench/sdpa_baseline.py --shape llama2-7b --batch 16 --context 32768 --reps 3 --out /tmp/s.jsonl > $LOG/ncu_sdpa.txt 2>&1
grep -E "^  \S|gpu__time|dram__bytes|lts__t_sectors|lts__throughput|dram__throughput" $LOG/ncu_sdpa.txt | cut -c1-110 | head -90
el sdpa
STARKV_EXPERIMENT_STAGE32=1 timeout 200 $BB/tests/starkv_gpu_tests > $LOG/tests_s32.txt 2>&1; echo "tests s32 rc=$?"; grep -E "^\[  (PASSED|FAILED)" $LOG/tests_s32.txt | head -5
el tests_s32
