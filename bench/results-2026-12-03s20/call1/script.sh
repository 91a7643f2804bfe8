#!/usr/bin/env bash
# Session 20 call 1. Tree = main 5bd4a1e + the fold's non-deferred softmax reading `sct` (same code) + two experiments
# off by default: fp16 accumulators for the reconstructed keys (STARKV_EXPERIMENT_F16_RECON: GQA fold, RoPE on the
# packed pairs) and for Z = CS . AB (STARKV_EXPERIMENT_F16_Z: MHA wgmma fold, Z packed as the score MMA's A fragments).
# Two builds: base (main's behaviour: the whole GPU suite, closes session 19's gap) and exp (both macros).
set -o pipefail
B1=/tmp/b-base; B2=/tmp/b-exp; LOG=/tmp/logs1; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
cmake -S . -B $B2 $CFG "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_F16_RECON -DSTARKV_EXPERIMENT_F16_Z" > $LOG/cfg2.txt 2>&1
( ninja -C $B1 -j8 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
( ninja -C $B2 -j8 decode_bench starkv_gpu_tests > $LOG/build2.txt 2>&1; echo "b2 rc=$?" ) &
wait
grep -E "error" -A3 $LOG/build1.txt $LOG/build2.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_base.txt 2>&1; echo "base tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]|tests ran" $LOG/tests_base.txt | head -20
el tests base
timeout 150 $B2/tests/starkv_gpu_tests > $LOG/tests_exp.txt 2>&1; echo "exp tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]|tests ran" $LOG/tests_exp.txt | head -30
grep -B3 -A8 "Failure" $LOG/tests_exp.txt | head -80
el tests exp
run() { local m=$1; shift; local B=$B1; [ $m = exp ] && B=$B2
  timeout 60 $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do left 380 || break; for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% fp16 16" "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama2-7b 75% 4/3 16" "llama2-7b 75% fp16 64" "llama3-8b 75% fp16 64"; do for m in base exp; do run $m $c; done; done; el "ab round $r"; done
cat $LOG/ab.txt
T="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__occupancy_limit_registers"
for m in base exp; do B=$B1; [ $m = exp ] && B=$B2
  for s in llama3-8b llama2-7b; do left 500 || break
  timeout 45 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $B/bench/decode_bench --shape $s --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_${s}_$m.txt 2>&1
  echo "== fold $s $m"; grep -E "gpu__time|sm__|dram__|smsp__|launch__" $LOG/ncu_fold_${s}_$m.txt | cut -c1-110
  done
done
el ncu
for m in base exp; do B=$B1; [ $m = exp ] && B=$B2; f=$(ls $B/CMakeFiles/starkv_sm90a_objects.dir/kernels/sm90a/*.o 2>/dev/null | head -1); [ -n "$f" ] && cuobjdump -sass $f > $LOG/sass_$m.txt 2>/dev/null; done
left 560 && timeout 40 compute-sanitizer --tool memcheck --error-exitcode 1 $B2/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*:*CudaFoldWgmma*' > $LOG/memcheck_exp.txt 2>&1; echo "memcheck exp rc=$?"; tail -2 $LOG/memcheck_exp.txt
el done
