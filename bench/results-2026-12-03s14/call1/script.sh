#!/usr/bin/env bash
# Session 14, call 1: main 264ea5c (kernels = f52bb6c): quick grid with SDPA in the same call (README table), b1/b64
# rows at 75%; ncu per-kernel times and full sections of the Llama-2-like 75% fp16 and 4/3 value kernels and folds.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c51.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
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
for s in "llama2-7b fp16" "llama2-7b 4/3" "llama3-8b fp16" "llama3-8b 4/3"; do set -- $s
  ncu --clock-control none --launch-skip 12 --launch-count 12 --metrics gpu__time_duration.sum,smsp__inst_executed.sum,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__registers_per_thread \
    $B/bench/decode_bench --shape $1 --comp 75% --bits $2 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/breakdown_${1}_${2/\//}.txt 2>&1
done
el breakdown
for bits in fp16 4/3; do
  ncu --clock-control none --kernel-name regex:"decode_values|fold" --launch-skip 4 --launch-count 2 --set full \
    $B/bench/decode_bench --shape llama2-7b --comp 75% --bits $bits --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/full_llama2_${bits/\//}.txt 2>&1
done
el full
