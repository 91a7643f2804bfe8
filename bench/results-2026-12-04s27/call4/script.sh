#!/usr/bin/env bash
# Session 27 call 4. The working tree = main ee6bbcf (+ results docs): the final kernels of the session.
# GPU suite on it; then
# (batch 1/16/64 x 4K..128K, fp16 and 4/3) with SDPA in the same call, both timed as stream launches and as graph replays.
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs4; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -20; exit 1; }
rm -f $LOG/build.txt
el built
timeout 90 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head
el tests
PYTHONUNBUFFERED=1 timeout 170 python3 bench/sdpa_baseline.py --reps 10 --out $LOG/sdpa_75.jsonl > $LOG/sdpa.txt 2>&1; echo "sdpa rc=$?"
grep -c us_graph $LOG/sdpa_75.jsonl; grep -i "fail\|unavail" $LOG/sdpa.txt | head -5
el sdpa
: > $LOG/starkv_75.jsonl
for bits in fp16 4/3; do for s in llama3-8b llama2-7b; do
  left 500 && timeout 90 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --reps 10 --out /tmp/x.jsonl >> $LOG/grid.txt 2>&1; echo "$s $bits rc=$?"; cat /tmp/x.jsonl >> $LOG/starkv_75.jsonl; rm -f /tmp/x.jsonl
  el "$s $bits"
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_75.jsonl $LOG/sdpa_75.jsonl --gpu $LOG/gpu.txt --md $LOG/table_75.md --peak 4800 > $LOG/merge.txt 2>&1
grep "^|" $LOG/table_75.md | cut -d'|' -f2-6,11-13,16-18 | head -60
