#!/usr/bin/env bash
# Session 25 call 4. Trees: base = main f18f262's kernels/ and src/cuda/; new = the working tree: (1) the fold's first
# tile copy issued before the prologue's loads (call 3), now not in the kEarlyRefill instances (the 60% fold lost 1.4%);
# (2) batches of <= 4 queries: the split merge and the combine in one launch (merge_combine_values_kernel: a cluster of
# a head's D/32 slices, shares of the merged latents exchanged through distributed shared memory). `nomc` = new with
# STARKV_NO_MERGE_COMBINE=1 (the two launches as before: (1) alone).
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs4; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_f18f262.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30; rm -f $LOG/build*.txt $LOG/cfg*.txt
el built
timeout 90 $B1/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -20
SPLIT='*SplitPath*:*LongSplit*:*LongContextSplits*:*CudaVsCpu16*:*WideRecon*:*FoldWgmma*:*Quantized*'
STARKV_NO_MERGE_COMBINE=1 timeout 60 $B1/tests/starkv_gpu_tests --gtest_filter="$SPLIT" > $LOG/tests_nomc.txt 2>&1; echo "nomc tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_nomc.txt | head
timeout 60 ncu --kernel-name regex:"merge_combine|merge_split|combine_split" --metrics gpu__time_duration.sum $B1/tests/starkv_gpu_tests --gtest_filter='*SplitPath*:*LongSplit*:*LongContextSplits*:*CudaVsCpu16*' > $LOG/ncu_kernel_names.txt 2>&1
grep -oE "(merge_combine_values_kernel|(combine|merge)_split_values_kernel<[0-9]+>)" $LOG/ncu_kernel_names.txt | sort | uniq -c
el tests
run() { local m=$1 bin=$B0/bench/decode_bench env=""; shift; [ $m != base ] && bin=$B1/bench/decode_bench; [ $m = nomc ] && env="STARKV_NO_MERGE_COMBINE=1"
  env $env timeout 40 $bin --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 1 4096 75%" "llama3-8b fp16 1 32768 75%" "llama3-8b 4/3 1 32768 75%" "llama2-7b fp16 1 4096 75%" "llama2-7b fp16 1 32768 75%" "llama2-7b 4/3 1 32768 75%" \
           "llama3-8b fp16 1 16384 75%" "llama2-7b fp16 4 32768 75%" "llama3-8b fp16 16 4096 75%" "llama2-7b fp16 16 32768 75%" "llama2-7b fp16 16 32768 60%" "llama3-8b 4/3 16 32768 75%"; do
    for m in base nomc new; do left 330 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,launch__grid_size,smsp__inst_executed.sum"
for c in "llama3-8b fp16 1 32768" "llama2-7b fp16 1 4096" "llama2-7b fp16 1 32768"; do set -- $c; f=$LOG/ncu_step_new_${1}_${2/\//}_b$3_$4.txt
  left 400 && timeout 60 ncu --cache-control none --clock-control none --kernel-name regex:"fold_scores|values_kernel|split_values" --launch-skip 3 --launch-count 3 --metrics $M $B1/bench/decode_bench --shape $1 --comp 75% --bits $2 --batch $3 --context $4 --reps 1 --out /tmp/z.jsonl > $f 2>&1
  echo "== new $c"; grep -E "^  [a-zA-Z_:<>]|gpu__time|inst_exec" $f | awk '/\(/{k=substr($2,1,40)} /gpu__time/{t=$NF} /inst_exec/{print k, "us", t, "inst", $NF}'
done 2>&1 | tee $LOG/ncu_step_summary.txt
el ncu
left 440 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*SplitPath*:*LongSplit*:*LongContextSplits*:*CudaVsCpu16*:*WideRecon*:*FoldWgmma*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 530 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*SplitPath*/0:*LongContextSplits*:*WideRecon*/0' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
