#!/usr/bin/env bash
# One command for issue 14's throughput figures: the machine's GEMM peak (fp32 and bf16, 2048^2,
# LibTorch; fp32 also oneDNN's sgemm) measured in the same run, then ShardTune
# (build/benchmarks/bench_train) and the PyTorch eager peer (benchmarks/peers/torch_llama.py;
# DistributedDataParallel over gloo at np=2) side by side for dtype fp32|bf16 x np 1|2 x sft|lora,
# in alternating pairs (ShardTune, peer, ShardTune, peer, ...; the median of each side is reported
# with its min-max, and the ratio with the min-max of the per-pair ratios).
#
#   benchmarks/run.sh [--quick] [--small] [--pairs N] [--steps N] [--dtypes "fp32 bf16"]
#                     [--nps "1 2"] [--strategies "sft lora"] [--peer-env "VAR=VALUE ..."]
#                     [--write-docs]
#
# --quick: the small overhead-bound llama (hidden 128, 4 layers, seq 128), 1 pair of 3 steps: a
#          check that everything runs (minutes), not a measurement.
# --small: the same small llama, measured (pairs and steps as given).
# --dtypes, --nps, --strategies: run only these configurations (default: all eight).
# --peer-env: environment for the peer only (e.g. glibc's MALLOC_* variables, the PyTorch user's
#          stand-in for ShardTune's caching allocator); recorded in table.md.
# default: the ~30M llama (hidden 512, 8 layers, 8 heads, ffn 1376, vocab 8192, seq 256, micro-batch
#          8 per rank), 3 pairs of 6 steps (one warm-up step each).
# Writes runs/benchmarks/<UTC date>/: results.csv (one row per run), summary.csv (medians, ratio
# to the peer, MFU against the GEMM peak of the run's dtype), throughput.png and ratio.png
# (gnuplot), table.md; --write-docs replaces the block between <!-- run.sh:begin --> and
# <!-- run.sh:end --> in docs/benchmarks.md with table.md. Run it on a quiet machine: figures
# taken while other processes compete for the cores are meaningless.
# Needs: build/benchmarks/bench_train (ninja -C build bench_train), python3-torch, gnuplot,
# Open MPI.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0 SMALL=0 PAIRS=3 STEPS=6 WRITE_DOCS=0 PEER_ENV=""
DTYPES="fp32 bf16" NPS="1 2" STRATEGIES="sft lora"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 SMALL=1 PAIRS=1 STEPS=3 ;;
    --small) SMALL=1 ;;
    --dtypes) DTYPES=$2; shift ;;
    --nps) NPS=$2; shift ;;
    --strategies) STRATEGIES=$2; shift ;;
    --pairs) PAIRS=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --peer-env) PEER_ENV=$2; shift ;;
    --write-docs) WRITE_DOCS=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

BIN=build/benchmarks/bench_train
PEER=benchmarks/peers/torch_llama.py
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "run.sh: $BIN missing (ninja -C build bench_train)" >&2; exit 1; }
$PY -c 'import torch' 2>/dev/null || { echo "run.sh: python3-torch missing" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "run.sh: gnuplot missing" >&2; exit 1; }

MPI=(mpirun --bind-to core)
if [ "$(id -u)" = 0 ]; then MPI+=(--allow-run-as-root); fi
CORES=$(nproc)
if [ "$CORES" -lt 2 ]; then MPI=(mpirun --bind-to none --oversubscribe); fi

if [ $SMALL = 1 ]; then
  ST_MODEL=(--model.hidden_size=128 --model.num_layers=4 --model.num_heads=4
            --model.intermediate_size=344 --model.max_position_embeddings=128 --train.seq_len=128)
  PEER_MODEL=(--hidden 128 --layers 4 --heads 4 --ffn 344 --seq 128)
  MODEL="llama h128 L4 seq128"
else
  ST_MODEL=()
  PEER_MODEL=()
  MODEL="llama h512 L8 seq256 (30M)"
fi
LORA_R=8

OUT=runs/benchmarks/$(date -u +%Y%m%dT%H%MZ)
mkdir -p "$OUT"
RESULTS=$OUT/results.csv
echo "framework,dtype,np,strategy,pair,tokens_per_s,model_gflops,peak_rss_mb" > "$RESULTS"

# The GEMM peak of this machine in this run, per dtype (2048^2 mm on all cores: LibTorch, and for
# fp32 also oneDNN's sgemm, the faster of the two).
$PY - "$OUT/peak.csv" "$CORES" <<'EOF'
import sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
def rate(call):  # GFLOP/s of a 2048^2 product, best of 3 x 5 calls after a warm-up
    call()
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(5):
            call()
        best = max(best, 2 * 2048**3 * 5 / (time.perf_counter() - t0) / 1e9)
    return best
with open(sys.argv[1], "w") as f:
    f.write("dtype,gemm_gflops\n")
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(2048, 2048, dtype=dt), torch.randn(2048, 2048, dtype=dt)
        best = rate(lambda: a @ b)
        if name == "fp32":
            # ShardTune's fp32 GEMMs run on oneDNN's sgemm (core/kernels/fused_ops.h), which
            # OPENBLAS_CORETYPE does not slow down: the machine's fp32 peak is the faster of the two.
            try:
                import ctypes
                sgemm = ctypes.CDLL("libdnnl.so.2").dnnl_sgemm
                sgemm.argtypes = [ctypes.c_char, ctypes.c_char] + [ctypes.c_int64] * 3 + [
                    ctypes.c_float, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                    ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64]
                c = torch.empty(2048, 2048)
                best = max(best, rate(lambda: sgemm(b"N", b"N", 2048, 2048, 2048, 1.0, a.data_ptr(),
                                                    2048, b.data_ptr(), 2048, 0.0, c.data_ptr(),
                                                    2048)))
            except OSError:
                pass
        f.write(f"{name},{best:.1f}\n")
EOF
# Both sides inherit this environment unchanged; the variables that switch BLAS and ATen kernels
# (docs/benchmarks-profile.md, "The peer") are recorded with the figures.
ENV_NOTE="OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-unset}"
[ -n "$PEER_ENV" ] && ENV_NOTE="$ENV_NOTE, peer only: $PEER_ENV"
MACHINE="$(lscpu | sed -n 's/^Model name: *//p'), $CORES cores, $ENV_NOTE"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $MACHINE; $MODEL"
cat "$OUT/peak.csv"

json_field() { $PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2], ""))' "$1" "$2"; }

run_shardtune() {  # dtype np strategy
  local dtype=$1 np=$2 strat=$3 threads=$((CORES / $2)) args=()
  [ "$threads" -ge 1 ] || threads=1
  # LoRA on every Linear of the blocks (not lm_head), no adapter dropout: what the peer's --lora does.
  [ "$strat" = lora ] && args+=(--strategy.name=lora --strategy.lora.r=$LORA_R --strategy.lora.dropout=0
                                --strategy.lora.target_modules=all-linear)
  local cmd=("$BIN" --train.steps="$STEPS" --train.dtype="$dtype" "${ST_MODEL[@]}" "${args[@]}")
  local line
  if [ "$np" = 1 ]; then
    line=$(SHARDTUNE_THREADS=$threads "${cmd[@]}" 2>/dev/null | tail -1)
  else
    line=$("${MPI[@]}" -np "$np" -x SHARDTUNE_THREADS=$threads "${cmd[@]}" 2>/dev/null | tail -1)
  fi
  echo "$line"
}

run_peer() {  # dtype np strategy
  local dtype=$1 np=$2 strat=$3 threads=$((CORES / $2)) args=()
  [ "$threads" -ge 1 ] || threads=1
  [ "$strat" = lora ] && args+=(--lora $LORA_R)
  local cmd=($PY "$PEER" --steps "$STEPS" --threads "$threads" --dtype "$dtype" "${PEER_MODEL[@]}"
             "${args[@]}")
  local envs=() exports=() kv
  for kv in $PEER_ENV; do envs+=("$kv"); exports+=(-x "$kv"); done
  if [ "$np" = 1 ]; then
    env "${envs[@]}" "${cmd[@]}" 2>/dev/null | tail -1
  else
    "${MPI[@]}" -np "$np" "${exports[@]}" "${cmd[@]}" 2>/dev/null | tail -1
  fi
}

record() {  # framework dtype np strategy pair json
  local tps gf rss
  tps=$(json_field "$6" tokens_per_s)
  gf=$(json_field "$6" model_gflops)
  rss=$(json_field "$6" peak_rss_mb_max)
  [ -n "$tps" ] || { echo "run.sh: $1 $2 np=$3 $4 produced no result" >&2; return 1; }
  echo "$1,$2,$3,$4,$5,$tps,$gf,$rss" >> "$RESULTS"
  printf '%-10s %-4s np=%s %-4s pair %s: %8.1f tokens/s\n' "$1" "$2" "$3" "$4" "$5" "$tps"
}

for dtype in $DTYPES; do
  for np in $NPS; do
    for strat in $STRATEGIES; do
      for ((p = 1; p <= PAIRS; p++)); do
        # Odd pairs run ShardTune first, even pairs the peer first: a drift of the machine's
        # state (clocks, caches, other load) then favours neither side.
        if ((p % 2)); then
          record shardtune "$dtype" "$np" "$strat" "$p" "$(run_shardtune "$dtype" "$np" "$strat")"
          record pytorch "$dtype" "$np" "$strat" "$p" "$(run_peer "$dtype" "$np" "$strat")"
        else
          record pytorch "$dtype" "$np" "$strat" "$p" "$(run_peer "$dtype" "$np" "$strat")"
          record shardtune "$dtype" "$np" "$strat" "$p" "$(run_shardtune "$dtype" "$np" "$strat")"
        fi
      done
    done
  done
done

# Medians, ratios, MFU; gnuplot data and the Markdown table.
$PY - "$OUT" "$MODEL" "$(date -u +%Y-%m-%d)" "$MACHINE" <<'EOF'
import csv, statistics, sys, torch
out, model, date, machine = sys.argv[1:5]
peak = {r["dtype"]: float(r["gemm_gflops"]) for r in csv.DictReader(open(f"{out}/peak.csv"))}
rows = list(csv.DictReader(open(f"{out}/results.csv")))
groups = {}
for r in rows:
    groups.setdefault((r["dtype"], int(r["np"]), r["strategy"], r["framework"]), []).append(r)
summary = []
for dtype in ("fp32", "bf16"):
    for np_ in (1, 2):
        for strat in ("sft", "lora"):
            st = groups.get((dtype, np_, strat, "shardtune"), [])
            pt = groups.get((dtype, np_, strat, "pytorch"), [])
            if not st or not pt:
                continue
            sv = [float(r["tokens_per_s"]) for r in st]
            pv = [float(r["tokens_per_s"]) for r in pt]
            s, p = statistics.median(sv), statistics.median(pv)
            # Ratio of each alternating pair (run back to back, so they share the machine's state).
            pairs = {r["pair"]: float(r["tokens_per_s"]) for r in pt}
            pair_ratios = [float(r["tokens_per_s"]) / pairs[r["pair"]] for r in st if r["pair"] in pairs]
            gf_tok = float(st[0]["model_gflops"]) / float(st[0]["tokens_per_s"])  # GFLOP per token
            summary.append(dict(config=f"{dtype} np{np_} {strat}", dtype=dtype, np=np_,
                                strategy=strat, shardtune=s, pytorch=p, ratio=s / p,
                                shardtune_min=min(sv), shardtune_max=max(sv),
                                pytorch_min=min(pv), pytorch_max=max(pv),
                                pair_ratio_min=min(pair_ratios), pair_ratio_max=max(pair_ratios),
                                pairs=len(pair_ratios),
                                mfu_shardtune=s * gf_tok / (peak[dtype] * np_),
                                mfu_pytorch=p * gf_tok / (peak[dtype] * np_)))
with open(f"{out}/summary.csv", "w") as f:
    w = csv.DictWriter(f, fieldnames=list(summary[0].keys()))
    w.writeheader()
    w.writerows(summary)
with open(f"{out}/plot.dat", "w") as f:
    for i, r in enumerate(summary):
        f.write(f'{i} "{r["config"]}" {r["shardtune"]:.1f} {r["pytorch"]:.1f} {r["ratio"]:.3f} '
                f'{r["mfu_shardtune"]:.3f} {r["mfu_pytorch"]:.3f}\n')
bf16_over_fp32 = {}
for r in summary:
    if r["dtype"] == "bf16":
        base = [q for q in summary if q["dtype"] == "fp32" and q["np"] == r["np"]
                and q["strategy"] == r["strategy"]]
        if base:
            bf16_over_fp32[r["config"]] = r["shardtune"] / base[0]["shardtune"]
with open(f"{out}/table.md", "w") as f:
    f.write(f"Machine: {machine}; LibTorch/PyTorch {torch.__version__}; {date}; model {model}; "
            f"GEMM peak 2048^2: fp32 {peak['fp32']:.0f}, bf16 {peak['bf16']:.0f} GFLOP/s "
            f"(benchmarks/run.sh, medians of alternating pairs).\n\n")
    f.write("Tokens/s: median (min-max) over the pairs; ratio: of the medians (min-max of the "
            "per-pair ratios).\n\n")
    f.write("| config | pairs | ShardTune tokens/s | PyTorch tokens/s | ratio | MFU ShardTune "
            "| MFU PyTorch | ShardTune bf16/fp32 |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
    for r in summary:
        b = bf16_over_fp32.get(r["config"])
        f.write(f'| {r["config"]} | {r["pairs"]} '
                f'| {r["shardtune"]:.1f} ({r["shardtune_min"]:.1f}-{r["shardtune_max"]:.1f}) '
                f'| {r["pytorch"]:.1f} ({r["pytorch_min"]:.1f}-{r["pytorch_max"]:.1f}) '
                f'| {r["ratio"]:.2f} ({r["pair_ratio_min"]:.2f}-{r["pair_ratio_max"]:.2f}) '
                f'| {r["mfu_shardtune"]:.2f} | {r["mfu_pytorch"]:.2f} | '
                f'{"%.2f" % b if b else ""} |\n')
print(open(f"{out}/table.md").read())
EOF

gnuplot <<EOF
set terminal pngcairo size 1100,500
set datafile separator whitespace
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set xtics rotate by -30
set key top left
set output "$OUT/throughput.png"
set title "Tokens/s: ShardTune vs PyTorch eager ($MODEL)"
set ylabel "tokens/s"
plot "$OUT/plot.dat" using 3:xtic(2) title "ShardTune", "" using 4 title "PyTorch"
set output "$OUT/mfu.png"
set title "MFU against the GEMM peak of each dtype"
set ylabel "MFU"
plot "$OUT/plot.dat" using 6:xtic(2) title "ShardTune", "" using 7 title "PyTorch"
set output "$OUT/ratio.png"
set title "ShardTune / PyTorch tokens/s"
set ylabel "ratio"
set yrange [0:*]
plot "$OUT/plot.dat" using 5:xtic(2) title "ratio", 1 with lines notitle
EOF

if [ $WRITE_DOCS = 1 ]; then
  $PY - docs/benchmarks.md "$OUT/table.md" <<'EOF'
import sys
doc, table = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
begin, end = "<!-- run.sh:begin -->", "<!-- run.sh:end -->"
if begin not in text or end not in text:
    sys.exit(f"run.sh: {doc} has no {begin} ... {end} block")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(head + begin + "\n" + table + end + tail)
EOF
fi
echo "run.sh: results in $OUT (results.csv, summary.csv, table.md, throughput.png, mfu.png, ratio.png)"
