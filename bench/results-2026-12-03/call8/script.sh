#!/usr/bin/env bash
# Session 12, call 8: main 4fd5220 (GPU tests ran in call 7 on this tree): the quick grid with SDPA
# (README table), b1/b64 rows at 75%.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c40.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
$B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
el starkv
PYTHONUNBUFFERED=1 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | cut -d'|' -f2,3,4,5,6,7,8,9,10,11 | head -40
