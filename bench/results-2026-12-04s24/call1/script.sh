#!/usr/bin/env bash
# Session 24 call 1. Trees: base = main adf34b5's kernels/ and src/cuda/; new = the working tree: the recon wgmma fold at
# padded key rank <= 32 takes the warpgroup's two KV heads at once, so that each cos/sin pair is read from shared memory
# once for both (their wgmma groups interleaved: (0,0) (1,0) issued, then per half and head wait, RoPE + scores, issue the
# head's second half). Session 23 found this fold bound by its shared-memory pipe; cos/sin were 8.4 M of 27.0 M wavefronts.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs1; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_adf34b5.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 75% 4/4 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 1"; do for m in base new; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum"
for t in base new; do B=$B0; [ $t = new ] && B=$B1; for c in "75% fp16" "75% 4/3"; do set -- $c
  timeout 90 ncu --clock-control none --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --metrics $M \
    $B/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch 16 --context 32768 --reps 1 --out /tmp/z.jsonl > $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt 2>&1
  echo "== $t $c: $(grep -E "gpu__time|inst_executed|issue_active|l1tex" $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt | awk '{printf "%s %s; ", $1, $NF}')"; done; done
el ncu
left 430 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaDenseVsCpu*' > $LOG/memcheck_new.txt 2>&1; echo "memcheck new rc=$?"; tail -2 $LOG/memcheck_new.txt
left 510 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*/0:*CudaWideRecon*/4' > $LOG/racecheck_new.txt 2>&1; echo "racecheck new rc=$?"; tail -2 $LOG/racecheck_new.txt
el done
