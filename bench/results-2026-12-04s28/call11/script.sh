#!/usr/bin/env bash
# Session 28 call 11 (main after the review mends; fold PTX identical to de36d2b's): GPU suite; decode_bench b16 x 32K
# rows (75% fp16 and 4/3, 60% 4/3, both shapes) with the SDPA baselines in the same call.
set -o pipefail
B=/tmp/b11
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench starkv_gpu_tests > /tmp/build11.txt 2>&1 || { grep error -A3 /tmp/build11.txt | head; exit 1; }
timeout 80 $B/tests/starkv_gpu_tests > $OUT/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $OUT/tests.txt
: > $OUT/starkv.jsonl
for s in llama3-8b llama2-7b; do for c in "75% fp16" "75% 4/3" "60% 4/3"; do set -- $c
  timeout 40 $B/bench/decode_bench --shape $s --comp $1 --bits $2 --batch 16 --context 32768 --reps 10 --out /tmp/x.jsonl 2>&1 | grep -v -e "^#" -e append >> $OUT/grid.txt; cat /tmp/x.jsonl >> $OUT/starkv.jsonl
done; done
PYTHONUNBUFFERED=1 timeout 60 python3 bench/sdpa_baseline.py --quick --reps 10 --out $OUT/sdpa.jsonl > /dev/null 2>&1; echo "sdpa rc=$?"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $OUT/gpu.txt
python3 bench/merge_results.py $OUT/starkv.jsonl $OUT/sdpa.jsonl --gpu $OUT/gpu.txt --md $OUT/table.md --peak 4800 > /dev/null 2>&1
grep "^|" $OUT/table.md | cut -d'|' -f2-10,11-13,16-18
