#!/usr/bin/env bash
# Session 19 call 2. Working tree = call 1's (main f33ea03 + long value blocks, STARKV_EXPERIMENT_VALUE_MT) with test
# case 7 fixed (value rank 1000: G=8 allows at most 1024) + a timing-only block-major read of the value kernel's
# fp16 slices (-DSTARKV_EXPERIMENT_BLOCK_MAJOR_VALUES: each page's slices of a block read as one contiguous run; the
# results are wrong). B1 = the tree, B2 = the tree with the macro. Tests: CudaLongValueBlocks (+ memcheck);
# A/B base / mt5 / bm / bm+mt5 two rounds; ncu of the value kernel in each.
set -o pipefail
B1=/tmp/b-new; B2=/tmp/b-bm; LOG=/tmp/logs2; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
cfg() { cmake -S . -B $1 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "${@:3}" > $LOG/cfg_$2.txt 2>&1; }
(cfg $B2 bm -DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_BLOCK_MAJOR_VALUES && ninja -C $B2 -j8 decode_bench > $LOG/build_bm.txt 2>&1) &
cfg $B1 new && ninja -C $B1 -j8 decode_bench starkv_gpu_tests > $LOG/build_new.txt 2>&1 || { grep -E "error" -A3 $LOG/build_new.txt | head -40; exit 1; }
wait
ls $B2/bench/decode_bench > /dev/null || { grep -E "error" -A3 $LOG/build_bm.txt | head -40; exit 1; }
el built
timeout 60 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaLongValueBlocks*' > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaLongValueBlocks*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
el tests
bin_of() { case $1 in bm*) echo $B2/bench/decode_bench;; *) echo $B1/bench/decode_bench;; esac; }
env_of() { case $1 in *mt5) echo STARKV_EXPERIMENT_VALUE_MT=5;; *) echo STARKV_X=0;; esac; }
run() { local m=$1; shift
  env $(env_of $m) timeout 60 $(bin_of $m) --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do left 330 || break; for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 50% fp16 16" "llama2-7b 60% fp16 16"; do for m in base mt5 bm bm_mt5; do run $m $c; done; done; el "ab round $r"; done
cat $LOG/ab.txt
T="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__ltcfabric2ltc_cycles_active.avg.pct_of_peak_sustained_elapsed,sm__inst_issued.avg.pct_of_peak_sustained_active,launch__grid_size"
for m in base mt5 bm bm_mt5; do left 480 || break
  env $(env_of $m) timeout 45 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $(bin_of $m) --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_$m.txt 2>&1
  echo "== values $m"; grep -E "gpu__time|sm__|dram__|lts__|launch__" $LOG/ncu_values_$m.txt | cut -c1-120
done
el ncu
