#!/usr/bin/env bash
# Session 28 call 6. Trees: main = 0ab265f's kernels (.device/k_main.tar); new = the working tree: call 5's change with
# the query rows sized row_heads + 8 (the score MMA's 8 consecutive rows always inside them: no clamp per head and
# tile; call 5's clamp cost the 75% 4/3 layer +1.8%). GPU suite on new (88: a Llama-3-like 60% 3/4-bit wide-recon case
# added), its shared memory under ncu, then memcheck and racecheck over the recon and quantized suites.
set -o pipefail
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }
bench/ab_trees.sh --rounds 2 --reps 20 --seconds 300 --tests new main=.device/k_main.tar new=. -- \
  "llama3-8b 4/3 16 32768 60%" "llama3-8b 4/4 16 32768 60%" "llama3-8b fp16 16 32768 60%" "llama3-8b 4/3 16 32768 75%" \
  "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 64 32768 60%" "llama3-8b 4/3 1 32768 60%" "llama3-8b 4/3 16 32768 50%"
T=/tmp/ab-build-new/tests/starkv_gpu_tests
M=gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__shared_mem_per_block_dynamic,launch__registers_per_thread
timeout 40 ncu --kernel-name regex:fold --launch-count 1 --metrics launch__shared_mem_per_block_dynamic,launch__grid_size $T --gtest_filter='*CudaWideRecon*/8' 2>&1 | grep -E "fold_scores|shared_mem|grid_size|PASSED|FAILED" | sed -E 's/\(LayerView.*//' | tee $OUT/ab/ncu_test_case.txt
for c in "60% 4/3" "75% 4/3"; do set -- $c
  timeout 40 ncu --clock-control none --kernel-name regex:fold --launch-skip 1 --launch-count 1 --metrics $M \
    /tmp/ab-build-new/bench/decode_bench --quick --reps 1 --shape llama3-8b --comp $1 --bits $2 --out /tmp/n.jsonl 2>&1 |
    grep -E "gpu__time|inst_exec|warps_active|shared_mem|registers" | awk '{print $1, $(NF-1), $NF}' | paste -s -d' ' | sed "s|^|new $1 $2: |"
done | tee $OUT/ab/ncu_fold.txt
left 420 && timeout 170 compute-sanitizer --tool memcheck --error-exitcode 1 $T --gtest_filter='*CudaWideRecon*:*CudaQuantized*/1:*CudaFoldWgmma*/5:*CudaSplitPath*/*' > /tmp/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -3 /tmp/memcheck.txt; grep -c "^\[       OK" /tmp/memcheck.txt
left 520 && timeout 75 compute-sanitizer --tool racecheck --error-exitcode 1 $T --gtest_filter='*CudaWideRecon*/4:*CudaWideRecon*/5:*CudaWideRecon*/8' > /tmp/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -3 /tmp/racecheck.txt; grep -c "^\[       OK" /tmp/racecheck.txt
cat /tmp/memcheck.txt /tmp/racecheck.txt | grep -E "RUN|OK \]|ERROR SUMMARY|Error|Hazard" | gzip > $OUT/ab/sanitizers.txt.gz
