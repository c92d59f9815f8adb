#!/usr/bin/env bash
# SIGKILL harness (issue 13; docs/reliability-checkpoints.md): KILLS times, a run that saves a
# checkpoint after every step is killed with SIGKILL (its whole process group: mpiexec and every
# rank) at a random moment: during start-up, a step, or a checkpoint write. After each kill:
#   1. `shardtune ckpt inspect <dir>` must succeed (`latest` names a complete, verified file);
#   2. `shardtune train --resume auto` for one more step must succeed and leave `latest` one step
#      further, in the same run (same run id).
# Kills alternate between np=1 and np=2 (mpiexec). Prints one line per kill and a summary; exits 1
# on the first failure (its logs stay in the work folder).
#
#   scripts/kill_harness.sh [KILLS] [BUILD_DIR]        (defaults: 20, build)
#   KILL_MAX_DELAY_S=4 ...  the kill comes 0.2..KILL_MAX_DELAY_S seconds after the start
#   KILL_SEED=N ...         the random moments (default: from the clock; printed)
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=${1:-20}
BUILD=${2:-build}
BIN=$(realpath "$BUILD/launch/shardtune")
MAX_DELAY=${KILL_MAX_DELAY_S:-4}
SEED=${KILL_SEED:-$(date +%s)}
RANDOM=$SEED
MPIEXEC=${MPIEXEC:-mpiexec}
MPIFLAGS="--oversubscribe --bind-to none"
[ "$(id -u)" -eq 0 ] && MPIFLAGS="--allow-run-as-root $MPIFLAGS"
export OMP_NUM_THREADS=1

work=$(mktemp -d "${TMPDIR:-/tmp}/kill_harness.XXXXXX")
echo "kill harness: $KILLS kills, seed $SEED, work folder $work"

ini() {  # a tiny model, every step checkpointed, all checkpoints kept (pruning is exercised too)
  cat >"$1" <<EOF
[model]
vocab_size = 260
hidden_size = 16
num_layers = 1
num_heads = 2
intermediate_size = 32
max_position_embeddings = 32
[train]
steps = 100000
global_batch = 2
micro_batch = 1
seq_len = 16
log_every = 1000
out_dir = $2/run
[data]
source = synthetic
synthetic_samples = 16
max_eval_samples = 2
[checkpoint]
dir = $2/ckpt
every = 1
keep_last = 3
EOF
}

# np, then shardtune arguments: shardtune alone (np=1) or under mpiexec.
cat >"$work/launch.sh" <<EOF
#!/usr/bin/env bash
np=\$1
shift
if [ "\$np" -eq 1 ]; then exec "$BIN" "\$@"; fi
exec $MPIEXEC $MPIFLAGS -np "\$np" "$BIN" "\$@"
EOF
chmod +x "$work/launch.sh"

latest_step() {  # the step `latest` names, or 0
  if [ -f "$1/ckpt/latest" ]; then
    "$BIN" ckpt inspect "$1/ckpt" | sed -n 's/^step: //p'
  else
    echo 0
  fi
}

run_id() { "$BIN" ckpt inspect "$1/ckpt" | sed -n 's/^run_id: //p'; }

start=$(date +%s)
survived=0
for ((k = 1; k <= KILLS; ++k)); do
  np=$((k % 2 + 1))
  dir=$work/np$np
  mkdir -p "$dir"
  [ -f "$dir/c.ini" ] || ini "$dir/c.ini" "$dir"
  # The kill: a random moment in 0.2 .. MAX_DELAY s.
  delay=$(awk -v r=$RANDOM -v m="$MAX_DELAY" 'BEGIN { printf "%.2f", 0.2 + (m - 0.2) * r / 32767 }')
  # setsid: the run leads its own process group, so one kill reaches mpiexec and every rank.
  setsid "$work/launch.sh" "$np" train --config "$dir/c.ini" --resume auto >>"$dir/killed.log" 2>&1 &
  pid=$!
  sleep "$delay"
  kill -KILL -- "-$pid" 2>/dev/null || true
  # Open MPI may start its ranks in process groups of their own: an orphaned rank would go on
  # training and saving after the "power loss". Every process of this run goes, by its config path.
  pkill -KILL -f -- "--config $dir/c.ini" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Stragglers (a rank between fork and exec) would hold the files: wait them out.
  for _ in $(seq 50); do
    pgrep -g "$pid" >/dev/null || pgrep -f -- "--config $dir/c.ini" >/dev/null || break
    pkill -KILL -f -- "--config $dir/c.ini" 2>/dev/null || true
    sleep 0.1
  done
  pgrep -g "$pid" >/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true

  # 1. `latest` names a complete, verified checkpoint (or there is none yet).
  before=0
  if [ -e "$dir/ckpt/latest" ]; then
    if ! "$BIN" ckpt inspect "$dir/ckpt" >"$dir/inspect.log" 2>&1; then
      echo "kill $k (np=$np, after ${delay}s): ckpt inspect FAILED:"; cat "$dir/inspect.log"; exit 1
    fi
    before=$(latest_step "$dir")
  fi
  id_before=$([ "$before" -gt 0 ] && run_id "$dir" || echo "")
  # 2. --resume auto for one more step.
  if ! timeout 300 "$work/launch.sh" "$np" train --config "$dir/c.ini" --resume auto \
      --train.steps=$((before + 1)) >"$dir/resume.log" 2>&1; then
    echo "kill $k (np=$np, after ${delay}s, latest step $before): --resume auto FAILED:"
    tail -5 "$dir/resume.log"; exit 1
  fi
  after=$(latest_step "$dir")
  if [ "$after" -ne $((before + 1)) ]; then
    echo "kill $k: latest is step $after after resuming from $before"; exit 1
  fi
  if [ -n "$id_before" ] && [ "$(run_id "$dir")" != "$id_before" ]; then
    echo "kill $k: the resumed run has another run id"; exit 1
  fi
  survived=$((survived + 1))
  printf 'kill %2d: np=%d after %5ss, latest step %d -> resumed to %d\n' "$k" "$np" "$delay" "$before" "$after"
done
echo "kill harness: $survived of $KILLS kills survived in $(($(date +%s) - start)) s (seed $SEED)"
rm -rf "$work"
