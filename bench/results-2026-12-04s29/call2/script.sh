#!/usr/bin/env bash
# Session 29 call 2. The working tree = main cb1c480 (the final kernels of issue 5). The GPU suite; SDPA flash/cuDNN over the
# whole grid (batch 1/16/64 x 4K..128K, launched and graph-replayed); starkv's whole grid (75/60/50% x fp16, 4/4, 4/3) as
# far as the call's time allows (75% first).
set -o pipefail
B=/tmp/b-final; LOG=/tmp/logs2; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -20; exit 1; }
rm -f $LOG/build.txt
el built
timeout 120 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head
el tests
PYTHONUNBUFFERED=1 timeout 200 python3 bench/sdpa_baseline.py --reps 10 --out $LOG/sdpa.jsonl > $LOG/sdpa.txt 2>&1; echo "sdpa rc=$?"
grep -c us_graph $LOG/sdpa.jsonl; grep -i "fail\|unavail" $LOG/sdpa.txt | head -5
el sdpa
: > $LOG/starkv.jsonl
for comp in 75% 60% 50%; do for bits in fp16 4/4 4/3; do for s in llama3-8b llama2-7b; do
  left 520 || continue
  timeout 80 $B/bench/decode_bench --shape $s --comp $comp --bits $bits --reps 10 --out /tmp/x.jsonl >> $LOG/grid.txt 2>&1; echo "$s $comp $bits rc=$?"; cat /tmp/x.jsonl >> $LOG/starkv.jsonl; rm -f /tmp/x.jsonl
  el "$s $comp $bits"
done; done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv.jsonl $LOG/sdpa.jsonl --gpu $LOG/gpu.txt --md $LOG/table.md --peak 4800 > $LOG/merge.txt 2>&1
grep "^|" $LOG/table.md | grep " 16 | 32768 " | cut -d'|' -f2-6,11-13,16-18 | head -40
