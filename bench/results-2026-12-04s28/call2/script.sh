#!/usr/bin/env bash
# Session 28 call 2 (main 0ab265f, kernels as ee6bbcf): per kernel of a b16 x 32K decode step (ncu, no clock control):
# time, warp instructions, DRAM bytes, issue and tensor-pipe activity (mma.sync = hmma, warpgroup MMA = gmma),
# occupancy, registers, and the largest stall reasons; 75% and 60% layers, fp16 / 4-4 / 4-3 latents. Why the quantized
# layers run slower than the fp16 ones (call 1: Llama-3-like 60% fp16 403 us, 4/3 699 us).
set -o pipefail
B=/tmp/b2; LOG=/tmp/logs2; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep error -A3 $LOG/build.txt | head; exit 1; }
el built
S=smsp__average_warps_issue_stalled
M="gpu__time_duration.sum,smsp__inst_executed.sum,dram__bytes_read.sum,sm__cycles_elapsed.avg.per_second,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem,launch__grid_size,launch__shared_mem_per_block_dynamic,${S}_long_scoreboard_per_issue_active.ratio,${S}_short_scoreboard_per_issue_active.ratio,${S}_wait_per_issue_active.ratio,${S}_barrier_per_issue_active.ratio,${S}_math_pipe_throttle_per_issue_active.ratio,${S}_mio_throttle_per_issue_active.ratio,${S}_not_selected_per_issue_active.ratio,${S}_selected_per_issue_active.ratio,${S}_dispatch_stall_per_issue_active.ratio,${S}_lg_throttle_per_issue_active.ratio,${S}_no_instruction_per_issue_active.ratio,${S}_sleeping_per_issue_active.ratio,${S}_membar_per_issue_active.ratio,${S}_branch_resolving_per_issue_active.ratio,${S}_drain_per_issue_active.ratio,${S}_imc_miss_per_issue_active.ratio,${S}_tex_throttle_per_issue_active.ratio"
for cfg in "llama3-8b 75% fp16" "llama3-8b 75% 4/4" "llama3-8b 75% 4/3" "llama3-8b 60% fp16" "llama3-8b 60% 4/3" \
           "llama2-7b 75% fp16" "llama2-7b 75% 4/4" "llama2-7b 75% 4/3" "llama2-7b 60% fp16" "llama2-7b 60% 4/3"; do set -- $cfg
  left 540 || continue
  f=$LOG/ncu_${1}_${2%\%}_${3/\//-}.txt
  timeout 120 ncu --clock-control none --kernel-name regex:"fold|decode_values|combine|merge" --launch-skip 3 --launch-count 3 --metrics $M \
    $B/bench/decode_bench --quick --reps 1 --shape $1 --comp $2 --bits $3 --out /tmp/n.jsonl > $f 2>&1; echo "$cfg rc=$?"
  el "$cfg"
done
for f in $LOG/ncu_*; do echo "== $f"; grep -E "^  [a-zA-Z_].*\(|gpu__time|inst_exec|dram__bytes_read|issue_active|pipe_tensor|warps_active" $f | sed -E 's/\(LayerView.*//'; done | head -150
