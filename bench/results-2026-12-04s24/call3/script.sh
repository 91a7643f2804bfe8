#!/usr/bin/env bash
# Session 24 call 3. Batch 1 (never profiled; Llama-3-like 75% fp16 at b1 x 32K takes ~87 us for 34 MB, 0.57x of cuDNN):
# main adf34b5 as committed. Per-kernel durations and launch shapes of one step (ncu), the step's time against forced
# item sizes (STARKV_SPLIT_TOKENS), and the launch gaps (nsys, where present).
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs3; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B $B $CFG > $LOG/cfg.txt 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E " error" -A3 $LOG/build.txt | head; exit 1; }
el built
DB=$B/bench/decode_bench
for c in "llama3-8b 75% fp16" "llama3-8b 75% 4/3" "llama2-7b 75% fp16" "llama2-7b 75% 4/3"; do set -- $c
  for s in 0 128 256 512 1024 2048 4096 8192; do
    echo "split=$s $(STARKV_SPLIT_TOKENS=$s timeout 30 $DB --shape $1 --comp $2 --bits $3 --batch 1 --context 32768 --reps 20 --out /tmp/x.jsonl 2>&1 | grep -v '^#' | grep -v shape | grep -v append)"
  done
done 2>&1 | tee $LOG/split_sweep_b1.txt
el sweep
M="gpu__time_duration.sum,launch__grid_size,launch__block_size,launch__occupancy_limit_shared_mem,sm__warps_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum"
for c in "llama3-8b 75% fp16" "llama3-8b 75% 4/3" "llama2-7b 75% fp16"; do set -- $c; f=$LOG/ncu_b1_${1}_${2%\%}_${3/\//}.txt
  timeout 120 ncu --clock-control none --kernel-name regex:"fold_scores|values_kernel" --launch-count 16 --metrics $M $DB --shape $1 --comp $2 --bits $3 --batch 1 --context 32768 --reps 1 --out /tmp/z.jsonl > $f 2>&1
  echo "== $c"; grep -E "^  [a-z_:<>]+.*\(|gpu__time|launch__grid|dram__thr" $f | awk '/\(/{k=$1} /gpu__time/{t=$NF} /launch__grid/{g=$NF} /dram__thr/{print k, "grid", g, "us", t, "dram%", $NF}' | tail -4
done 2>&1 | tee $LOG/ncu_b1_summary.txt
el ncu
if command -v nsys > /dev/null; then
  for c in "llama3-8b 75% fp16" "llama2-7b 75% fp16"; do set -- $c
    timeout 120 nsys profile -o $LOG/nsys_${1} --force-overwrite true -t cuda $DB --shape $1 --comp $2 --bits $3 --batch 1 --context 32768 --reps 5 --out /tmp/z.jsonl > /dev/null 2>&1
    timeout 60 nsys stats -r cuda_gpu_trace --format csv $LOG/nsys_${1}.nsys-rep > $LOG/nsys_trace_${1}.csv 2>&1; tail -30 $LOG/nsys_trace_${1}.csv | cut -c1-200
    rm -f $LOG/nsys_${1}.nsys-rep $LOG/nsys_${1}.sqlite
  done
else echo "no nsys"; fi
el done
