#!/usr/bin/env bash
# Session 28 call 10. Trees: main = 380da63's kernels (.device/k_head.tar: compact rows); new = the working tree: MHA
# layers with quantized keys at padded rank 48 fold in narrow chunks of 4 heads (two CTAs per SM, 128 registers, one
# head's wgmmas ahead, no early refill) instead of chunks of 8 at one CTA per SM (call 2: Llama-2-like 60% 4/3 fold 1150
# us, fp16 579). GPU suite on new; the Llama-2-like 60% rows (75% and 50% 4/3: same code, controls); ncu of the fold;
# memcheck and racecheck on the narrow wgmma fold cases. (Second run: the narrow rank-48 instance added to the kernels
# whose dynamic shared memory limit is raised; the first failed its launch with cudaErrorInvalidValue.)
set -o pipefail
bench/ab_trees.sh --rounds 2 --reps 20 --seconds 200 --tests new main=.device/k_head.tar new=. -- \
  "llama2-7b 4/3 16 32768 60%" "llama2-7b 4/4 16 32768 60%" "llama2-7b 4/3 64 32768 60%" "llama2-7b 4/3 1 32768 60%" \
  "llama2-7b 4/3 16 4096 60%" "llama2-7b 4/3 16 32768 75%"
M=gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__shared_mem_per_block_dynamic,launch__registers_per_thread
for t in main new; do
  timeout 40 ncu --clock-control none --kernel-name regex:fold --launch-skip 1 --launch-count 1 --metrics $M \
    /tmp/ab-build-$t/bench/decode_bench --quick --reps 1 --shape llama2-7b --comp 60% --bits 4/3 --out /tmp/n.jsonl 2>&1 |
    grep -E "fold_scores|gpu__time|inst_exec|warps_active|shared_mem|registers" | sed -E 's/\(LayerView.*//' | awk '{print $1, $(NF-1), $NF}' | paste -s -d' ' | sed "s|^|$t 60% 4/3: |"
done | tee $OUT/ab/ncu_fold.txt
T=/tmp/ab-build-new/tests/starkv_gpu_tests
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $T --gtest_filter='*CudaFoldWgmma*:*CudaQuantized*' > /tmp/mc.txt 2>&1; echo "memcheck rc=$?"; tail -2 /tmp/mc.txt
timeout 90 compute-sanitizer --tool racecheck --error-exitcode 1 $T --gtest_filter='*CudaFoldWgmma*/5:*CudaFoldWgmma*/7' > /tmp/rc.txt 2>&1; echo "racecheck rc=$?"; tail -2 /tmp/rc.txt
cat /tmp/mc.txt /tmp/rc.txt | grep -E "RUN|OK \]|ERROR SUMMARY|RACECHECK SUMMARY|Error|Hazard" > $OUT/ab/sanitizers.txt
