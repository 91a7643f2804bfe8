#!/usr/bin/env bash
# Session 27 call 6: why 4d09a15 (c2) is 2% slower than a52171d (c3) although their PTX differs only in a
# prologue load: SASS of both builds' fold objects, and ncu source counters of the Llama-3-like 60% fp16
# b16 x 32K fold (the padded-rank-48 instance, whose PTX differs only there) in each.
set -o pipefail
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
for n in c2 c3; do
  d=/tmp/src-$n; rm -rf $d; mkdir -p $d
  tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $d; rm -rf $d/kernels $d/src/cuda; tar xf .device/k_$n.tar -C $d
  ( cmake -S $d -B /tmp/b-$n $CFG > /dev/null 2>&1 && ninja -C /tmp/b-$n -j8 decode_bench > /tmp/build_$n.txt 2>&1; echo "$n rc=$?" ) &
done
wait; el built
for n in c2 c3; do
  o=$(find /tmp/b-$n -name "fold_scores_wgmma.cu.o" | head -1); echo "$n obj: $o"
  cuobjdump -sass $o > $OUT/sass_$n.txt 2>&1; gzip $OUT/sass_$n.txt
  mkdir -p /tmp/x-$n && ( cd /tmp/x-$n && cuobjdump -xelf all $o > /dev/null 2>&1; for f in *.cubin; do nvdisasm -g -c $f; done > /tmp/all_$n.sass 2>/dev/null )
  timeout 90 ncu --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --page source --print-source sass --csv \
    /tmp/b-$n/bench/decode_bench --shape llama3-8b --comp 60% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > /tmp/fold_$n.csv 2> /tmp/ncu_$n.err
  python3 bench/ncu_sass_profile.py /tmp/fold_$n.csv --lines /tmp/all_$n.sass --dump /tmp/lines_$n.tsv --top 40 > $OUT/prof_$n.txt 2>&1; head -25 $OUT/prof_$n.txt
  gzip -c /tmp/lines_$n.tsv > $OUT/lines_$n.tsv.gz; gzip -c /tmp/fold_$n.csv > $OUT/fold_$n.csv.gz
  el "$n profiled"
done
