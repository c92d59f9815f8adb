#!/usr/bin/env bash
# Strong and weak scaling of a training step over ranks and TP x DP layouts (build/benchmarks/
# bench_train), with a CSV and a PNG of the scaling efficiency against ranks.
#
#   benchmarks/scaling.sh [--quick] [--nps "1 2 4"] [--steps N] [--out DIR] [-- bench_train options]
#
# strong: the global batch is fixed (GLOBAL sequences, default 16) whatever the layout: each data-
#         parallel replica takes GLOBAL / dp sequences in micro-batches of at most 8; efficiency =
#         (tokens/s at np) / (np x tokens/s at np = 1).
# weak:   each data-parallel replica keeps 8 sequences per step (global batch = 8 x dp; a TP-only
#         layout splits the same 8 sequences over its ranks); efficiency = (tokens/s at np) /
#         (np x tokens/s at np = 1), as for strong scaling.
# Layouts: for each np, every TP dividing np and the model's heads (DP = np / TP). Threads per
# rank: cores / np, at least 1; np above the core count oversubscribes the machine and its rows
# are marked (their efficiency measures time-slicing, not the framework).
# --quick: the small llama (hidden 128, 4 layers, seq 128), np 1 2, 3 steps: a check that it runs.
# Default model: bench_train's ~30M llama (hidden 512, 8 layers, seq 256). Writes DIR (default
# runs/scaling/<UTC date>): results.csv, efficiency.png (gnuplot). Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
NPS="1 2 4" STEPS=5 QUICK=0 GLOBAL=16 OUT=runs/scaling/$(date -u +%Y%m%dT%H%MZ)
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 NPS="1 2" STEPS=3 ;;
    --nps) NPS=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "scaling.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
BIN=${BENCH_TRAIN:-build/benchmarks/bench_train}  # BENCH_TRAIN: another build's binary
[ -x "$BIN" ] || { echo "scaling.sh: $BIN missing (ninja -C build bench_train)" >&2; exit 1; }
MODEL=()
HEADS=8
if [ $QUICK = 1 ]; then
  MODEL=(--model.hidden_size=128 --model.num_layers=4 --model.num_heads=4 --model.num_kv_heads=4
         --model.intermediate_size=344 --model.max_position_embeddings=128 --train.seq_len=128)
  HEADS=4
fi
CORES=$(nproc)
mkdir -p "$OUT"
CSV=$OUT/results.csv
echo "mode,np,tp,dp,threads,oversubscribed,global_batch,tokens_per_s,step_s,peak_rss_mb_max,efficiency" > "$CSV"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(lscpu | sed -n 's/^Model name: *//p'), $CORES cores"

run() {  # mode np tp global micro -> appends a row (efficiency filled in at the end)
  local mode=$1 np=$2 tp=$3 global=$4 micro=$5 threads over=0 launcher=()
  threads=$((CORES / np)); [ "$threads" -ge 1 ] || threads=1
  if [ "$np" -gt 1 ]; then
    launcher=(mpirun -np "$np" --bind-to none)
    [ "$(id -u)" = 0 ] && launcher+=(--allow-run-as-root)
    [ "$np" -gt "$CORES" ] && { launcher+=(--oversubscribe); over=1; }
  fi
  local json
  json=$(SHARDTUNE_THREADS=$threads "${launcher[@]}" "$BIN" "${MODEL[@]}" --train.steps="$STEPS" \
         --parallel.tp="$tp" --train.global_batch="$global" --train.micro_batch="$micro" \
         "${EXTRA[@]}" 2>/dev/null | tail -1)
  /usr/bin/python3 - "$mode" "$np" "$tp" "$threads" "$over" "$json" >> "$CSV" <<'PY'
import json, sys
mode, np_, tp, threads, over, line = sys.argv[1:]
r = json.loads(line)
print(f"{mode},{np_},{tp},{r['dp']},{threads},{over},{r['global_batch']},{r['tokens_per_s']},"
      f"{r['step_s']},{r['peak_rss_mb_max']},")
PY
  tail -1 "$CSV"
}

for np in $NPS; do
  for tp in $(seq 1 "$np"); do
    [ $((np % tp)) -eq 0 ] && [ $((HEADS % tp)) -eq 0 ] || continue
    dp=$((np / tp))
    micro=$((GLOBAL / dp)); [ "$micro" -le 8 ] || micro=8
    run strong "$np" "$tp" "$GLOBAL" "$micro"
    run weak "$np" "$tp" $((8 * dp)) 8
  done
done

# Efficiency against the np = 1 row of the same mode; the plot.
/usr/bin/python3 - "$CSV" "$OUT" <<'PY'
import csv, sys
path, out = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
base = {r["mode"]: float(r["tokens_per_s"]) for r in rows if r["np"] == "1"}
for r in rows:
    r["efficiency"] = f"{float(r['tokens_per_s']) / (int(r['np']) * base[r['mode']]):.3f}"
with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
for mode in ("strong", "weak"):
    with open(f"{out}/{mode}.dat", "w") as f:
        for r in rows:
            if r["mode"] == mode:
                label = f"TP{r['tp']}xDP{r['dp']}" + ("*" if r["oversubscribed"] == "1" else "")
                f.write(f"{r['np']} {r['efficiency']} {label}\n")
print(f"{'mode':6} {'np':>3} {'TPxDP':>6} {'tokens/s':>9} {'eff':>6}")
for r in rows:
    flag = " (oversubscribed)" if r["oversubscribed"] == "1" else ""
    print(f"{r['mode']:6} {r['np']:>3} {r['tp'] + 'x' + r['dp']:>6} "
          f"{float(r['tokens_per_s']):9.1f} {float(r['efficiency']):6.3f}{flag}")
PY
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 800,500 font 'sans,11'
set output '$OUT/efficiency.png'
set title 'ShardTune scaling efficiency ($CORES cores; * = oversubscribed)'
set xlabel 'ranks'; set ylabel 'efficiency'; set yrange [0:1.2]; set grid; set key bottom left
plot '$OUT/strong.dat' using 1:2 with linespoints pt 7 title 'strong (fixed global batch)', \
     '' using 1:2:3 with labels offset 0,1 notitle, \
     '$OUT/weak.dat' using 1:2 with linespoints pt 5 title 'weak (8 sequences per replica)'
GP
  echo "plot: $OUT/efficiency.png"
fi
echo "csv: $CSV"
