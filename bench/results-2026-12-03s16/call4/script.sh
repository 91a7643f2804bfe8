#!/usr/bin/env bash
# Session 16 call 4 (hypothesis test, lean): main 2d9d186 + call2's value tensor staging + the fourteenth session's row
# alignment switch. Does the tensor copy's extra DRAM traffic (1.35 -> 1.49 GB) come from rows that are not 64-byte
# aligned (row 4128 B), and with 64-byte rows does the value kernel get faster? Modes: base, tma, a64, tma+a64.
set -o pipefail
B=/tmp/b; P=/tmp/src; LOG=/tmp/logs; rm -rf $LOG $P; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
mkdir -p $P && tar cf - --exclude=./build --exclude=./.git . | tar xf - -C $P && (cd $P && patch -p1 < .device/value_tma.patch && patch -p1 < .device/row_align.patch) > $LOG/patch.txt 2>&1 || { cat $LOG/patch.txt; exit 1; }
cmake -S $P -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -40; exit 1; }
el built
envs() { case $1 in base) echo STARKV_NO_VALUE_TENSOR_STAGING=1;; tma) echo X=0;; a64) echo "STARKV_NO_VALUE_TENSOR_STAGING=1 STARKV_EXPERIMENT_ROW_ALIGN=64";; tma64) echo STARKV_EXPERIMENT_ROW_ALIGN=64;; esac; }
: > $LOG/ab.txt
for r in 1 2; do for m in base tma a64 tma64; do
  env $(envs $m) timeout 60 $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt
done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum"
for m in base tma a64 tma64; do
  env $(envs $m) timeout 60 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_$m.txt 2>&1
  echo "== values $m"; grep -E "gpu__time|dram__|inst_" $LOG/ncu_values_$m.txt | cut -c1-110
done
el ncu
STARKV_EXPERIMENT_ROW_ALIGN=64 timeout 120 $B/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*:*CudaLongSplit*:*CudaVsCpu16*' > $LOG/tests_tma64.txt 2>&1; echo "tests tma64 rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_tma64.txt | head
el tests
