#!/usr/bin/env bash
# Session 20 call 2. Tree = main 5bd4a1e + fp16 accumulators in the wgmma fold (reconstructed keys and Z, no macros) +
# the softmax nit + rel_error recorded as a test property. Base = the same tree with kernels/ from 5bd4a1e
# (.device/base_kernels_5bd4a1e.tar). New tree: whole GPU suite (json: rel_error per fold/recon shape), memcheck and
# racecheck over the fold suites; base: the fold/recon suites (json) for the error comparison; A/B two rounds; the
# quick grid with SDPA in the same call on the new tree.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs2; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels && tar xf .device/base_kernels_5bd4a1e.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench starkv_gpu_tests > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E "error" -A3 $LOG/build0.txt $LOG/build1.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests --gtest_output=json:$LOG/tests_new.json > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
timeout 100 $B0/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaWideRecon*:*CudaFoldSmallTile*' --gtest_output=json:$LOG/tests_base.json > $LOG/tests_base.txt 2>&1; echo "base fold tests rc=$?"; grep -E "^\[  (PASSED|FAILED)" $LOG/tests_base.txt
python3 - $LOG/tests_base.json $LOG/tests_new.json <<'PY' | tee $LOG/rel_errors.txt
import json,sys
def load(f):
    d=json.load(open(f)); r={}
    for s in d['testsuites']:
        for t in s['testsuite']:
            if 'rel_error' in t: r[s['name']+'.'+t['name']+' '+t.get('value_param','')]=float(t['rel_error'])
    return r
b=load(sys.argv[1]); n=load(sys.argv[2])
print('| test | base rel_error | fp16 accumulators | ratio |'); print('|---|---|---|---|')
for k in sorted(n):
    if k in b: print(f'| {k} | {b[k]:.3e} | {n[k]:.3e} | {n[k]/max(b[k],1e-30):.2f} |')
PY
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 75% fp16 1" "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama2-7b 75% 4/3 16" "llama2-7b 75% fp16 1"; do for m in base new; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
B=$B1
timeout 120 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  timeout 30 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
el starkv
PYTHONUNBUFFERED=1 timeout 120 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  timeout 30 python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -40
left 520 && timeout 70 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaWideRecon*:*CudaSplitPath*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 560 && timeout 35 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*/6:*CudaFoldWgmma*/7:*CudaWideRecon*/0:*CudaWideRecon*/3' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
