#!/usr/bin/env bash
# Session 21 call 1. Tree = main 871c8b7 + quantized MHA keys decoded straight into the score MMA's fragments
# (fold_decodes_to_fragments: wgmma fold at padded key rank 32 / 64) + 3 new CudaFoldWgmma cases.
# Base = the same tree with kernels/ from 871c8b7 (main). Whole GPU suite (json, rel_errors) on both trees,
# A/B two rounds, memcheck and racecheck over the fold suites (new tree).
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs1; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels && tar xf .device/base_kernels_871c8b7.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench starkv_gpu_tests > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E "error" -A3 $LOG/build0.txt $LOG/build1.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests --gtest_output=json:$LOG/tests_new.json > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
timeout 100 $B0/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaWideRecon*' --gtest_output=json:$LOG/tests_base.json > $LOG/tests_base.txt 2>&1; echo "base fold tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_base.txt | head
for f in base new; do python3 - $LOG/tests_$f.json <<'PY' > $LOG/rel_errors_$f.txt
import json,sys
d=json.load(open(sys.argv[1]))
for s in d['testsuites']:
    for t in s['testsuite']:
        if 'rel_error' in t: print(s['name']+'.'+t['name'], t.get('value_param',''), t['rel_error'])
PY
done
paste $LOG/rel_errors_base.txt $LOG/rel_errors_new.txt | awk '{print $NF, $(NF/2), $0}' | cut -c1-60 | head -40
cat $LOG/rel_errors_new.txt | tail -5
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% 4/3 16" "llama2-7b 50% 4/3 16" "llama2-7b 75% 4/4 16" "llama2-7b 60% 4/3 16" "llama2-7b 75% 4/3 64" "llama2-7b 75% 4/3 1" "llama2-7b 75% fp16 16" "llama3-8b 75% 4/3 16"; do for m in base new; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
left 450 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*:*CudaQuantized*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 530 && timeout 55 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*/5:*CudaFoldWgmma*/8:*CudaFoldWgmma*/9:*CudaFoldWgmma*/10:*CudaFoldWgmma*/11' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
