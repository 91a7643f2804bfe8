#!/usr/bin/env bash
# Session 24 call 7. main e81b407 as committed: the 75% grid (batch 1/16/64 x 4K/16K/32K/128K, fp16 and 4/3; bench75's
# loop at --reps 10) with SDPA (flash, cuDNN) in the same call. The README's last such grid (results-2026-12-02e) predates
# the warpgroup-MMA fold. Each part time-boxed to the device time left; what did not finish is missing from the table.
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs7; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs7.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -20; exit 1; }
rm -f $LOG/build.txt
el built
PYTHONUNBUFFERED=1 timeout 80 python3 bench/sdpa_baseline.py --reps 10 --out $LOG/sdpa_75.jsonl > $LOG/sdpa.txt 2>&1; echo "sdpa rc=$?"
el sdpa
: > $LOG/starkv_75.jsonl
for bits in fp16 4/3; do for s in llama3-8b llama2-7b; do
  left 330 && timeout 65 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --reps 10 --out /tmp/x.jsonl >> $LOG/grid.txt 2>&1; echo "$s $bits rc=$?"; cat /tmp/x.jsonl >> $LOG/starkv_75.jsonl; rm -f /tmp/x.jsonl
  el "$s $bits"
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_75.jsonl $LOG/sdpa_75.jsonl --gpu $LOG/gpu.txt --md $LOG/table_75.md --peak 4800 > $LOG/merge.txt 2>&1
grep "^|" $LOG/table_75.md | cut -d'|' -f2-6,10-13 | head -60
