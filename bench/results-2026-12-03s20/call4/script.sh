#!/usr/bin/env bash
# Session 20 call 4. Tree = main 212211e + the recon fold issuing both dim halves' wgmmas before the first half's RoPE
# and the MHA wgmma fold issuing Z two heads ahead where NR > 32 (the final form of call 3's e2 and Z_DEPTH3).
# Base = the same tree with kernels/ from 212211e (= aef3942's kernels). Whole GPU suite (json), memcheck and racecheck
# over the fold suites, A/B two rounds.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs4; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels && tar xf .device/base_kernels_212211e.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E "error" -A3 $LOG/build0.txt $LOG/build1.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests --gtest_output=json:$LOG/tests_new.json > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
python3 - $LOG/tests_new.json <<'PY' | tee $LOG/rel_errors.txt
import json,sys
d=json.load(open(sys.argv[1]))
for s in d['testsuites']:
    for t in s['testsuite']:
        if 'rel_error' in t: print(s['name']+'.'+t['name'], t.get('value_param',''), t['rel_error'])
PY
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 50% fp16 16" "llama3-8b 75% fp16 64" "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama2-7b 60% 4/3 16" "llama2-7b 50% 4/3 16" "llama2-7b 75% 4/3 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1"; do for m in base new; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
left 480 && timeout 90 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaWideRecon*:*CudaSplitPath*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*/2:*CudaFoldWgmma*/3:*CudaFoldWgmma*/8:*CudaWideRecon*/0:*CudaWideRecon*/3' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
