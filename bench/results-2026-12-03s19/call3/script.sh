#!/usr/bin/env bash
# Session 19 call 3. Working tree = call 2's + the value kernel as a task loop (decode_values_task) and, built with
# -DSTARKV_EXPERIMENT_VALUE_SMS, an experiment: CTAs on SMs with %smid >= STARKV_EXPERIMENT_VALUE_SMS exit at once,
# the others take (item, block) tasks from a queue. Question: how fast is the value kernel on fewer SMs (for a step
# that would run fold and values side by side on disjoint SMs)? ncu of the value kernel and step times per SM count;
# split-path GPU tests with the queue on 40 SMs.
set -o pipefail
B2=/tmp/b-sms; LOG=/tmp/logs3; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
cmake -S . -B $B2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_VALUE_SMS > $LOG/cfg.txt 2>&1
ninja -C $B2 -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -40; exit 1; }
el built
STARKV_EXPERIMENT_VALUE_SMS=40 timeout 90 $B2/tests/starkv_gpu_tests --gtest_filter='*CudaLongSplit*:*CudaFoldSmallTile*:*CudaSplitPath*:*CudaFoldWgmma*:*CudaWideRecon*:*CudaQuantized*' > $LOG/tests_sms40.txt 2>&1; echo "tests (40 SMs) rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_sms40.txt | head
el tests
: > $LOG/steps.txt
for r in 1 2; do for n in all 132 100 80 66 50 33; do env=STARKV_X=0; [ $n != all ] && env=STARKV_EXPERIMENT_VALUE_SMS=$n
  for c in "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16"; do set -- $c
  env $env timeout 60 $B2/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|sms$n: |" >> $LOG/steps.txt
  done; done; el "steps round $r"; done
cat $LOG/steps.txt
STARKV_EXPERIMENT_VALUE_SMS=66 $B2/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/q.jsonl 2>&1 | grep "value kernel" | head -1
T="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_issued.avg.pct_of_peak_sustained_active,sm__cycles_active.avg,launch__grid_size"
for n in all 132 100 80 66 50 33; do left 520 || break; env=STARKV_X=0; [ $n != all ] && env=STARKV_EXPERIMENT_VALUE_SMS=$n
  env $env timeout 40 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $B2/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_$n.txt 2>&1
  echo "== values sms $n"; grep -E "gpu__time|sm__|dram__|launch__" $LOG/ncu_values_$n.txt | cut -c1-120
done
el ncu
