#!/usr/bin/env bash
# Session 14, call 6: is L2 the limit? The same L2/DRAM counters for cuDNN's and flash's SDPA kernels, starkv's dense
# kernel (0% low-rank) and the low-rank fold and value kernels (Llama-2-like, batch 16, 32K).
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c56.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
M=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_requests_srcunit_tex_op_read.sum,lts__t_sector_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size
PYTHONUNBUFFERED=1 timeout 200 ncu --clock-control none --launch-skip 30 --launch-count 14 --metrics $M \
  python3 bench/sdpa_baseline.py --shape llama2-7b --batch 16 --context 32768 --reps 3 --out /tmp/s.jsonl > $LOG/ncu_sdpa.txt 2>&1
grep -E "^\s+\S.*\(|gpu__time|dram__|lts__|sm__thr|grid_size" $LOG/ncu_sdpa.txt | cut -c1-120 | head -80
el sdpa
timeout 120 ncu --clock-control none --kernel-name regex:"dense_layer" --launch-skip 2 --launch-count 1 --metrics $M \
  $B/bench/decode_bench --shape llama2-7b --comp 0% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_dense.txt 2>&1
grep -E "dense_layer|gpu__time|dram__|lts__|sm__thr|grid_size" $LOG/ncu_dense.txt | cut -c1-120
el dense
