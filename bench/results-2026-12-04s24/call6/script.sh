#!/usr/bin/env bash
# Session 24 call 6. Trees: base = main e81b407's kernels/ and src/cuda/ (call 5's); new = the working tree: the value
# kernel, the merge and the combine launched as programmatic dependents of the kernel before each (kernels/
# dependent_launch.h; the fold, the value kernel and the merge trigger at their start, the dependents wait before their
# first read of its output). STARKV_NO_PDL=1 launches them the ordinary way in the same binary. Then, if the tests pass,
# the grid with SDPA in the same call on the new tree.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs6; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs6.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_e81b407.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; rc=$?; echo "new tests rc=$rc"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -20
STARKV_NO_PDL=1 timeout 100 $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*:*LongSplit*:*SplitPath*:*FoldWgmma*:*WideRecon*:*DecodeStep*:*Append*' > $LOG/tests_no_pdl.txt 2>&1; echo "no-PDL tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_no_pdl.txt | head
el tests
run() { local m=$1 bin=$B0/bench/decode_bench env=""; shift; [ $m != base ] && bin=$B1/bench/decode_bench; [ $m = nopdl ] && env="STARKV_NO_PDL=1"
  env $env timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context $5 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 1 32768" "llama3-8b 75% 4/3 1 32768" "llama2-7b 75% fp16 1 32768" "llama3-8b 75% fp16 1 4096" \
           "llama3-8b 75% fp16 16 32768" "llama2-7b 75% fp16 16 32768" "llama2-7b 75% 4/3 16 32768" "llama3-8b 75% fp16 64 32768"; do for m in base nopdl new; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
left 300 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*:*LongSplit*:*SplitPath*:*DecodeStep*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 360 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*:*SplitPath*/0' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
[ $rc -eq 0 ] || exit 0
B=$B1
left 430 && timeout 100 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  left 500 && timeout 30 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
el starkv
left 520 && PYTHONUNBUFFERED=1 timeout 60 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  left 570 && timeout 25 python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -40
