#!/usr/bin/env bash
# Session 12, call 1: tree = main 29244c4 + chunk_key_tile (host) + warp-local paired value decode.
# Full GPU suite (covers main's merged CudaWideRecon quantized cases), sanitizers, A/B vs main.
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c33.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg .device/base $BB base && ninja -C $BB -j6 decode_bench starkv_gpu_tests > $LOG/build_base.txt 2>&1) &
cfg . $B new && ninja -C $B -j10 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
timeout 200 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED" $LOG/tests.txt | head -20
if grep -q "FAILED" $LOG/tests.txt; then timeout 200 $BB/tests/starkv_gpu_tests > $LOG/tests_base.txt 2>&1; echo "base tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|^\[  FAILED" $LOG/tests_base.txt | head; fi
el tests
run() { local bench=$B/bench/decode_bench; case $1 in base*) bench=$BB/bench/decode_bench;; esac
  timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% 4/3 16" "llama3-8b 75% 4/3 16" "llama2-7b 50% 4/3 16" "llama3-8b 60% 4/3 16" "llama2-7b 75% 4/4 16" "llama2-7b 75% fp16 16"; do for m in base new; do run $m $c; done; done; done
grep -v append $LOG/ab.txt
el ab
for m in base new; do bb=$B; [ $m = base ] && bb=$BB
ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 3 --launch-count 1 \
  --metrics gpu__time_duration.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,smsp__inst_executed.sum,smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio \
  $bb/bench/decode_bench --shape llama2-7b --comp 75% --bits 4/3 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/ncu_values_$m.txt 2>&1
grep -E "gpu__time|bank|wavefronts|inst_executed|barrier" $LOG/ncu_values_$m.txt | sed "s|^|$m |"; done
el ncu
compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*:*CudaQuantized*:*CudaSplitPath*:*CudaLongSplit*/2' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -3 $LOG/memcheck.txt
compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*:*CudaQuantized*/1:*CudaQuantized*/2:*CudaSplitPath*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -3 $LOG/racecheck.txt
el done
