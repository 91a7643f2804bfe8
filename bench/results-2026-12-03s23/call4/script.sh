#!/usr/bin/env bash
# Session 23 call 4. Trees: base = main 9d5a703's kernels/ and src/cuda/; v1 = the working tree: the recon wgmma's
# query rows for the score MMA's padding columns read the next rows instead of one zero row (ldmatrix bank conflicts),
# its score rows padded by 4 floats (store bank conflicts), Ut unpadded; v2 = v1 + its CS table in the readers' order
# (two 16-byte loads per half and token instead of 8 4-byte ones; -DSTARKV_EXPERIMENT_CS_ORDER).
# Call 3 found the recon fold's shared-memory wavefronts limiting (rotation entries: 27 M -> 37 M wavefronts, slower).
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-v1; B2=/tmp/b-v2; S0=/tmp/src-base; LOG=/tmp/logs4; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_9d5a703.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
cmake -S . -B $B2 $CFG -DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_CS_ORDER > $LOG/cfg2.txt 2>&1
( ninja -C $B0 -j4 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j6 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
( ninja -C $B2 -j6 decode_bench starkv_gpu_tests > $LOG/build2.txt 2>&1; echo "b2 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_v1.txt 2>&1; echo "v1 tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_v1.txt | head -20
timeout 150 $B2/tests/starkv_gpu_tests > $LOG/tests_v2.txt 2>&1; echo "v2 tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_v2.txt | head -20
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = v1 ] && bin=$B1/bench/decode_bench; [ $m = v2 ] && bin=$B2/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 1" "llama2-7b 75% fp16 16"; do for m in base v1 v2; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum"
for t in base v1 v2; do B=$B0; [ $t = v1 ] && B=$B1; [ $t = v2 ] && B=$B2; for c in "75% fp16" "75% 4/3"; do set -- $c
  timeout 90 ncu --clock-control none --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --metrics $M \
    $B/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch 16 --context 32768 --reps 1 --out /tmp/z.jsonl > $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt 2>&1
  echo "== $t $c: $(grep -E "gpu__time|inst_executed|issue_active|l1tex" $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt | awk '{printf "%s %s; ", $1, $NF}')"; done; done
el ncu
left 430 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B2/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaDenseVsCpu*' > $LOG/memcheck_v2.txt 2>&1; echo "memcheck v2 rc=$?"; tail -2 $LOG/memcheck_v2.txt
left 500 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B2/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*/0:*CudaWideRecon*/4' > $LOG/racecheck_v2.txt 2>&1; echo "racecheck v2 rc=$?"; tail -2 $LOG/racecheck_v2.txt
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*/0:*CudaWideRecon*/4' > $LOG/racecheck_v1.txt 2>&1; echo "racecheck v1 rc=$?"; tail -2 $LOG/racecheck_v1.txt
el done
