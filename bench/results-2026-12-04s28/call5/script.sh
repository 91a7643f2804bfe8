#!/usr/bin/env bash
# Session 28 call 5. Trees: main = 0ab265f's kernels (.device/k_main.tar); new = the working tree: the reconstructing
# fold's query and score rows sized by the chunk's query heads (16 for the Llama-3-like wide chunk, not 32), no deferred
# softmax with quantized keys at padded rank 48, and a single staging buffer refilled right after the decode, so that
# the Llama-3-like 60% 4/3 layout fits two CTAs per SM (call 2: 139.5 KB, one CTA, fold 455 us). GPU suite on new.
set -o pipefail
bench/ab_trees.sh --rounds 2 --reps 20 --seconds 330 --tests new main=.device/k_main.tar new=. -- \
  "llama3-8b 4/3 16 32768 60%" "llama3-8b 4/4 16 32768 60%" "llama3-8b fp16 16 32768 60%" "llama3-8b 4/3 16 32768 75%" \
  "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 64 32768 60%" "llama3-8b 4/3 1 32768 60%" "llama3-8b 4/3 16 32768 50%"
M=gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__shared_mem_per_block_dynamic,launch__registers_per_thread
for t in main new; do for c in "60% 4/3" "60% 4/4" "75% 4/3"; do set -- $c
  timeout 40 ncu --clock-control none --kernel-name regex:fold --launch-skip 1 --launch-count 1 --metrics $M \
    /tmp/ab-build-$t/bench/decode_bench --quick --reps 1 --shape llama3-8b --comp $1 --bits $2 --out /tmp/n.jsonl 2>&1 |
    grep -E "gpu__time|inst_exec|warps_active|shared_mem|registers" | awk '{print $1, $(NF-1), $NF}' | paste -s -d' ' | sed "s|^|$t $1 $2: |"
done; done | tee $OUT/ab/ncu_fold.txt
