#!/usr/bin/env bash
# Session 17 call 2. Working tree = main + the head-pair experiment in kernels/fold_scores_kernel.cuh (compiled out by
# default). Builds: base (no flag), hp (-DSTARKV_EXPERIMENT_HEAD_PAIRS: two adjacent heads per wgmma, N = 2 NR, two
# accumulator sets), hps (+ -DSTARKV_EXPERIMENT_HEAD_PAIRS_SERIAL: one accumulator set, wait after each issue).
# GPU tests of the fold suites in hp and hps, A/B two rounds, ncu of the Llama-2-like fold in each.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-hp; B2=/tmp/b-hps; LOG=/tmp/logs2; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
cfg() { cmake -S . -B $1 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "$2" > $LOG/cfg_$3.txt 2>&1; }
(cfg $B0 "-DCMAKE_CUDA_FLAGS=" base && ninja -C $B0 -j5 decode_bench > $LOG/build_base.txt 2>&1) &
(cfg $B1 "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_HEAD_PAIRS" hp && ninja -C $B1 -j5 decode_bench starkv_gpu_tests > $LOG/build_hp.txt 2>&1) &
cfg $B2 "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_HEAD_PAIRS -DSTARKV_EXPERIMENT_HEAD_PAIRS_SERIAL" hps && ninja -C $B2 -j6 decode_bench starkv_gpu_tests > $LOG/build_hps.txt 2>&1 || { grep -E "error" -A3 $LOG/build_hps.txt | head -40; exit 1; }
wait
el built
F='*CudaFold*:*CudaSplitPath*:*CudaLongSplit*:*CudaQuant*:*CudaVsCpu16*'
for m in hp hps; do B=$B1; [ $m = hps ] && B=$B2
  timeout 150 $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/tests_$m.txt 2>&1; echo "tests $m rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_$m.txt | head
done
STARKV_NO_PAIRED_FOLD=1 timeout 100 $B2/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaFoldSmallTile*:*CudaSplitPath*' > $LOG/tests_hps_nopaired.txt 2>&1; echo "tests hps no paired rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_hps_nopaired.txt | head
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = hp ] && bin=$B1/bench/decode_bench; [ $m = hps ] && bin=$B2/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama2-7b 75% 4/3 16"; do for m in base hp hps; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"
for m in base hp hps; do bin=$B0/bench/decode_bench; [ $m = hp ] && bin=$B1/bench/decode_bench; [ $m = hps ] && bin=$B2/bench/decode_bench
  timeout 60 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $bin --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_$m.txt 2>&1
  echo "== fold $m"; grep -E "gpu__time|sm__|inst_" $LOG/ncu_fold_$m.txt | cut -c1-120
done
el ncu
