#!/usr/bin/env bash
# Session 28 call 8 (main 3621033, compact rows): the cells the change moves, Llama-3-like 60% 3/4 and 4/4 bits at every
# batch and context, with the Llama-3-like SDPA baselines in the same call.
set -o pipefail
B=/tmp/b8; LOG=$OUT; mkdir -p $LOG
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > /tmp/build8.txt 2>&1 || { grep error -A3 /tmp/build8.txt | head; exit 1; }
PYTHONUNBUFFERED=1 timeout 120 python3 bench/sdpa_baseline.py --shape llama3-8b --reps 10 --out $LOG/sdpa.jsonl > /tmp/sdpa8.txt 2>&1; echo "sdpa rc=$?"
: > $LOG/starkv.jsonl
for bits in 4/3 4/4; do timeout 80 $B/bench/decode_bench --shape llama3-8b --comp 60% --bits $bits --reps 10 --out /tmp/x.jsonl >> $LOG/grid.txt 2>&1; echo "$bits rc=$?"; cat /tmp/x.jsonl >> $LOG/starkv.jsonl; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv.jsonl $LOG/sdpa.jsonl --gpu $LOG/gpu.txt --md $LOG/table.md --peak 4800 > /dev/null 2>&1
grep "^|" $LOG/table.md | cut -d'|' -f2-6,11-13,16-18
