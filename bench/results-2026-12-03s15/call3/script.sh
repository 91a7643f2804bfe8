#!/usr/bin/env bash
# Session 15 call 10 (main + stage_alignment_experiment.patch + a STARKV_EXPERIMENT_NO_PREFETCH switch in the fold):
# is the L2 fabric (ltcfabric2ltc) what bounds the value kernel and the fold? Fabric counters of the value kernel
# (base, s32), starkv's dense kernel and cuDNN's; the fold with and without its L2 prefetch (A/B and counters).
set -o pipefail
B=/tmp/starkv-np; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S . -B $1 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "$2" > $LOG/cfg_$3.txt 2>&1; }
(cfg $BB "-DCMAKE_CUDA_FLAGS=" base && ninja -C $BB -j8 decode_bench > $LOG/build_base.txt 2>&1) &
cfg $B "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_NO_PREFETCH" np && ninja -C $B -j8 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
run() { local m=$1 bin=$BB/bench/decode_bench; shift; [ $m = np ] && bin=$B/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1"; do for m in base np; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
M="breakdown:lts__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sectors_srcunit_tex.sum,lts__t_sectors_srcunit_ltcfabric.sum,lts__t_requests_srcunit_tex.sum,lts__t_requests_srcunit_ltcfabric.sum"
prof() { local name=$1 bin=$2 regex=$3 skip=$4; shift 4
  env $ENVV timeout 120 ncu --clock-control none --kernel-name regex:"$regex" --launch-skip $skip --launch-count 1 --metrics $M $bin "$@" > $LOG/ncu_$name.txt 2>&1
  echo "== $name"; grep -E "ltcfabric|lts__t_|lts__throughput_int|lts__d_sectors_fill_dev|lts__t_tag|dram__|gpu__time" $LOG/ncu_$name.txt | cut -c1-120; }
A="--context 32768 --reps 2 --out /tmp/z.jsonl --batch 16"
ENVV="X=0" prof values_base $BB/bench/decode_bench decode_values 2 --shape llama2-7b --comp 75% --bits fp16 $A
ENVV="STARKV_EXPERIMENT_STAGE=32" prof values_s32 $BB/bench/decode_bench decode_values 2 --shape llama2-7b --comp 75% --bits fp16 $A
ENVV="X=0" prof fold_np $B/bench/decode_bench fold_scores 2 --shape llama2-7b --comp 75% --bits fp16 $A
ENVV="X=0" prof dense $BB/bench/decode_bench dense_layer 2 --shape llama2-7b --comp 0% --bits fp16 $A
el ncu
ENVV="X=0" PYTHONUNBUFFERED=1 prof cudnn python3 cudnn 1 bench/sdpa_baseline.py --shape llama2-7b --batch 16 --context 32768 --reps 3 --out /tmp/s.jsonl
el sdpa
