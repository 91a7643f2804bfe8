#!/usr/bin/env bash
# Session 13, call 1: wip/s13 = 688c883 (one-LOP3 dequant) + 793fe23 (PDL for the split step's
# value/merge/combine kernels) + an inactive experiment macro. Modes: base = main 7cd83d2;
# new; nopdl = new with STARKV_NO_PDL=1 (the LOP3 change alone); exp = new built with
# -DSTARKV_EXPERIMENT_FOLD_TWO_BUFFERS (fp16 wgmma fold double-buffered at one CTA per SM).
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; BE=/tmp/starkv-exp; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c41.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "${@:4}" > $LOG/cfg_$3.txt 2>&1; }
(cfg .device/base $BB base && ninja -C $BB -j4 decode_bench > $LOG/build_base.txt 2>&1) &
(cfg . $BE exp -DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_FOLD_TWO_BUFFERS && ninja -C $BE -j4 decode_bench > $LOG/build_exp.txt 2>&1) &
cfg . $B new && ninja -C $B -j8 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
ls $BB/bench/decode_bench $BE/bench/decode_bench || { tail -30 $LOG/build_base.txt $LOG/build_exp.txt; }
timeout 200 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED" $LOG/tests.txt | head -20
STARKV_NO_PDL=1 timeout 200 $B/tests/starkv_gpu_tests --gtest_filter='*Split*:*Fold*:*Quantized*:*WideRecon*' > $LOG/tests_nopdl.txt 2>&1; echo "tests nopdl rc=$?"; tail -3 $LOG/tests_nopdl.txt
el tests
run() { local bench=$B/bench/decode_bench; local envs=""; case $1 in base) bench=$BB/bench/decode_bench;; exp) bench=$BE/bench/decode_bench;; nopdl) envs="STARKV_NO_PDL=1";; esac
  env $envs timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for m in base new nopdl exp; do run $m llama2-7b 75% fp16 16; done
  for m in base new exp; do run $m llama2-7b 50% fp16 16; done
  for c in "llama2-7b 75% 4/3 16" "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama2-7b 75% fp16 1" "llama3-8b 75% 4/3 1"; do for m in base new nopdl; do run $m $c; done; done
  for m in base new; do run $m llama2-7b 75% 4/4 16; run $m llama2-7b 50% 4/3 16; done
done
grep -v append $LOG/ab.txt
el ab
compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*:*CudaQuantized*:*CudaSplitPath*:*CudaLongSplit*/2:*CudaFoldWgmma*:*CudaFoldSmallTile*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $LOG/memcheck.txt
compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaQuantized*/1:*CudaQuantized*/2:*CudaSplitPath*:*CudaLongSplit*/2:*CudaWideRecon*:*CudaFoldWgmma*/1:*CudaFoldSmallTile*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -1 $LOG/racecheck.txt
el sanitizers
