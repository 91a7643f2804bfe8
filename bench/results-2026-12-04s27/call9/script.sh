#!/usr/bin/env bash
# Session 27 call 9: per kernel of the four b16 x 32K 75% steps on main (kernels ee6bbcf): time, warp instructions,
# DRAM bytes and SM clock (ncu, no clock control), for the issue-slot and HBM lower bounds of each pass.
set -o pipefail
B=/tmp/b9; cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > /tmp/build9.txt 2>&1 || { grep error -A3 /tmp/build9.txt | head; exit 1; }
M="gpu__time_duration.sum,smsp__inst_executed.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__cycles_elapsed.avg.per_second,smsp__issue_active.avg.pct_of_peak_sustained_active,launch__grid_size"
for cfg in "llama3-8b fp16" "llama2-7b fp16" "llama3-8b 4/3" "llama2-7b 4/3"; do set -- $cfg
  echo "== $1 $2"
  timeout 100 ncu --clock-control none --kernel-name regex:"fold|decode_values|combine|merge" --launch-skip 3 --launch-count 3 --metrics $M \
    $B/bench/decode_bench --quick --reps 1 --shape $1 --comp 75% --bits $2 --out /tmp/n.jsonl 2>&1 | grep -E "^  [a-zA-Z_].*\(|gpu__time|inst_exec|dram__bytes|per_second|issue_active|grid_size"
done | tee $OUT/kernel_counts.txt
