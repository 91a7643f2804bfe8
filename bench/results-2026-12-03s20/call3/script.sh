#!/usr/bin/env bash
# Session 20 call 3. Tree = main aef3942 (fp16 accumulators in the wgmma fold) + two recon-fold experiments, off unless
# compiled in: STARKV_EXPERIMENT_RECON_BOTH_HALVES (both dim halves' wgmmas issued before the first half's RoPE, two fp16
# accumulator sets) and STARKV_EXPERIMENT_RECON_TABLE (the recon wgmma CS table reordered so each thread's 8 pairs per
# half are two 16-byte loads); and one MHA-fold experiment, STARKV_EXPERIMENT_Z_DEPTH3 (Z wgmmas two heads ahead of the
# scores, three fp16 accumulator sets). Four builds: base, e2 (both halves), e1 (table), e12 (all three: the GQA rows
# measure e1 + e2, the MHA rows Z_DEPTH3). Fold GPU suites for each experiment, A/B two rounds, ncu of the folds.
set -o pipefail
LOG=/tmp/logs3; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
declare -A FL=( [base]="" [e2]="-DSTARKV_EXPERIMENT_RECON_BOTH_HALVES" [e1]="-DSTARKV_EXPERIMENT_RECON_TABLE" [e12]="-DSTARKV_EXPERIMENT_RECON_TABLE -DSTARKV_EXPERIMENT_RECON_BOTH_HALVES -DSTARKV_EXPERIMENT_Z_DEPTH3" )
for m in base e2 e1 e12; do
  cmake -S . -B /tmp/b-$m $CFG "-DCMAKE_CUDA_FLAGS=${FL[$m]}" > $LOG/cfg_$m.txt 2>&1
  ( ninja -C /tmp/b-$m -j4 decode_bench starkv_gpu_tests > $LOG/build_$m.txt 2>&1; echo "$m rc=$?" ) &
done
wait
grep -E "error" -A3 $LOG/build_*.txt | head -30
el built
for m in e2 e1 e12; do
  timeout 60 /tmp/b-$m/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*:*CudaFoldWgmma*:*CudaSplitPath*:*CudaQuantized*:*CudaLongSplit*' --gtest_output=json:$LOG/tests_$m.json > $LOG/tests_$m.txt 2>&1; echo "$m tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_$m.txt | head -8
done
el tests
run() { local m=$1; shift
  timeout 60 /tmp/b-$m/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 1"; do for m in base e2 e1 e12; do run $m $c; done; done
  for c in "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama2-7b 75% 4/3 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1"; do for m in base e12; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,smsp__inst_executed.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum"
for m in base e2 e1 e12; do left 520 || break
  timeout 45 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    /tmp/b-$m/bench/decode_bench --shape llama3-8b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_recon_$m.txt 2>&1
  echo "== recon fold $m"; grep -E "gpu__time|sm__|smsp__|launch__|l1tex" $LOG/ncu_recon_$m.txt | cut -c1-110
done
for m in base e12; do left 560 || break
  timeout 45 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    /tmp/b-$m/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_mha_$m.txt 2>&1
  echo "== mha fold $m"; grep -E "gpu__time|sm__|smsp__|launch__|l1tex" $LOG/ncu_mha_$m.txt | cut -c1-110
done
el ncu
