#!/usr/bin/env bash
# A/B of kernel trees on the GPU machine: the decode step of each tree timed on the same rows, the
# trees interleaved row by row and the rows repeated in rounds, so that clock drift and other runs
# fall on every tree alike. Every kernel change on main was measured this way (bench/RESULTS.md).
#
# usage: bench/ab_trees.sh [--rounds N] [--reps N] [--seconds S] [--tests NAME] TREE ... -- ROW ...
#   TREE  NAME=.          the working tree itself
#         NAME=FILE.tar   the working tree with kernels/ and src/cuda/ taken from FILE.tar
#                         (made here by: git archive REV kernels src/cuda > FILE.tar)
#   ROW   "SHAPE BITS BATCH CONTEXT COMP", e.g. "llama3-8b fp16 16 32768 75%"
#   --rounds N   times through the rows (default 2)
#   --reps N     decode_bench repetitions per row (default 20; the median is reported)
#   --seconds S  stop starting rows after S seconds (default 400; the device's calls are time-boxed)
#   --tests NAME run the whole GPU suite on tree NAME first (its summary lines are printed)
# Prints each row as "NAME: <decode_bench columns>", then per row the mean of the rounds and its
# change against the first tree. The rows, the summary and the test log go to $OUT/ab (or
# ./ab-out); the build logs stay in /tmp/ab-logs (the device tool returns at most 8 files).
set -o pipefail
rounds=2 reps=20 seconds=400 tests=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --tests) tests=$2; shift 2 ;;
    --) shift; break ;;
    *=*) trees+=("$1"); shift ;;
    *) echo "ab_trees.sh: unknown argument '$1' (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done
rows=("$@")
[ ${#trees[@]} -ge 1 ] && [ ${#rows[@]} -ge 1 ] || { echo "ab_trees.sh: give TREE ... -- ROW ..." >&2; exit 2; }
LOG=${OUT:-$PWD/ab-out}/ab; BLOG=/tmp/ab-logs; mkdir -p "$LOG" "$BLOG"
t0=$(date +%s)
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF
     -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
jobs=$(( $(nproc) / ${#trees[@]} )); [ $jobs -ge 1 ] || jobs=1
names=()
for t in "${trees[@]}"; do
  name=${t%%=*} src=${t#*=}; names+=("$name")
  if [ "$src" != "." ]; then  # a copy of the working tree with the tar's kernels
    dir=/tmp/ab-src-$name; rm -rf "$dir"; mkdir -p "$dir"
    tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C "$dir"
    rm -rf "$dir/kernels" "$dir/src/cuda"; tar xf "$src" -C "$dir" || exit 1
    src=$dir
  fi
  ( cmake -S "$src" -B /tmp/ab-build-$name $CFG > "$BLOG/configure_$name.txt" 2>&1 &&
    ninja -C /tmp/ab-build-$name -j$jobs decode_bench starkv_gpu_tests > "$BLOG/build_$name.txt" 2>&1
    echo "build $name rc=$?" ) &
done
wait
for name in "${names[@]}"; do  # (a tree that did not build would time nothing: stop here instead)
  [ -x /tmp/ab-build-$name/bench/decode_bench ] && continue
  echo "ab_trees.sh: tree $name did not build (logs in $BLOG):" >&2
  grep -h -E "error|Error" -A3 "$BLOG/configure_$name.txt" "$BLOG/build_$name.txt" 2>/dev/null | head -20 >&2
  exit 1
done
echo "[$(( $(date +%s) - t0 ))s] built"
if [ -n "$tests" ]; then
  timeout 120 /tmp/ab-build-$tests/tests/starkv_gpu_tests > "$LOG/tests_$tests.txt" 2>&1
  echo "tests $tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" "$LOG/tests_$tests.txt" | head -20
fi
: > "$LOG/ab.txt"
for ((r = 0; r < rounds; ++r)); do
  for row in "${rows[@]}"; do
    set -- $row
    for name in "${names[@]}"; do
      [ $(( $(date +%s) - t0 )) -lt $seconds ] || break 3
      timeout 60 /tmp/ab-build-$name/bench/decode_bench --shape $1 --bits $2 --batch $3 --context $4 \
        --comp $5 --reps $reps --out /tmp/ab-$name.jsonl 2>&1 |
        grep -v -e "^#" -e "^shape" -e "append" | sed "s|^|$name: |" >> "$LOG/ab.txt"
    done
  done
done
cat "$LOG/ab.txt"
echo "[$(( $(date +%s) - t0 ))s] rows"
# Mean step time (column 7 of a row, after the tree's name) per row and tree, against the first tree.
# Lines that are not timing rows (a run's error message) stay in ab.txt and are counted per tree.
awk -v tree_names="${names[*]}" '
  BEGIN { m = split(tree_names, names, " "); first = names[1] }
  { name = $1; sub(":", "", name) }
  NF < 10 || $8 !~ /^[0-9]+([.][0-9]+)?$/ { failed[name]++; next }
  { key = $2 " " $3 " " $4 " " $5 " " $6
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    sum[key, name] += $8; cnt[key, name]++ }
  END { for (i = 1; i <= n; ++i) { k = order[i]; line = k
          base = cnt[k, first] ? sum[k, first] / cnt[k, first] : 0
          for (j = 1; j <= m; ++j) { t = names[j]; if (!cnt[k, t]) continue
            mean = sum[k, t] / cnt[k, t]
            line = line sprintf("  %s %.1f us", t, mean)
            if (t != first && base > 0) line = line sprintf(" (%+.1f%%)", 100 * (mean / base - 1)) }
          print line }
        for (j = 1; j <= m; ++j)
          if (failed[names[j]]) printf "%s: %d lines that are not timing rows (see ab.txt)\n", names[j], failed[names[j]] }' "$LOG/ab.txt" | tee "$LOG/summary.txt"
