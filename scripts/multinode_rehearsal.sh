#!/usr/bin/env bash
# Multi-node rehearsal on one machine: two network namespaces joined by a veth pair act as two
# nodes, and `mpirun` runs ShardTune across them over Open MPI's TCP transport, entering the
# second "node" through a launch agent (`ip netns exec`) instead of ssh. It proves, for TP=2 x DP=2
# on 2 nodes (4 ranks):
#   (a) TP groups stay inside a node (ShardTune's startup line sees 2 nodes and warns about no TP
#       group spanning them; a control run mapped round-robin does get the warning);
#   (b) the result equals the single-node run of the same config (losses and checkpoint bitwise);
#   (c)+(d) killing every process of one node while the job is inside a checkpoint write ends
#       every rank (time printed), leaves the previous checkpoint, and `--resume auto` from it on
#       ONE node finishes with the same checkpoint as the uninterrupted run.
#
# usage: scripts/multinode_rehearsal.sh [path/to/shardtune_hooked]
#   (default build/tests/shardtune_hooked: shardtune with the test hooks of launch/hooks.h)
# Needs root (network namespaces), iproute2, Open MPI and hdf5-tools (h5diff). Exits 77 (ctest's
# skip code) when namespaces cannot be created here. KEEP_WORK=1 keeps the work directory.
#
# Between the namespaces only TCP is allowed (--mca btl tcp,self, pml ob1): both "nodes" share one
# kernel, so Open MPI's shared-memory transport would otherwise connect them behind our back.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/build/tests/shardtune_hooked}")
SKIP=77

say() { printf '[multinode] %s\n' "$*"; }
fail() { printf '[multinode] FAIL: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || fail "no shardtune binary at $BIN (build it: ninja -C build shardtune_hooked)"
for tool in ip mpirun h5diff unshare; do
  command -v "$tool" >/dev/null || { say "SKIP: '$tool' is not installed"; exit $SKIP; }
done
if [ "$(id -u)" -ne 0 ]; then say "SKIP: needs root to create network namespaces"; exit $SKIP; fi

# Names are unique per run (pid), so a crashed earlier run never collides with this one.
TAG="stn$$"
NS1="$TAG-node1"
NS2="$TAG-node2"
HOST1=st-node1
HOST2=st-node2
ADDR1=10.231.0.1
ADDR2=10.231.0.2
IFACE=clu0  # the veth end's name inside each namespace
WORK=$(mktemp -d /tmp/shardtune-multinode.XXXXXX)
CREATED_NS=()
JOB_PID=""

cleanup() {
  local rc=$?
  set +e
  if [ -n "$JOB_PID" ] && kill -0 "$JOB_PID" 2>/dev/null; then kill -KILL "$JOB_PID"; fi
  for ns in "${CREATED_NS[@]}"; do
    # Every process still inside the namespace (ranks, orted), then the namespace and its veth end.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    for _ in $(seq 1 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'printf "[multinode] FAIL: command failed at line %s\n" "$LINENO" >&2' ERR

# --- the two nodes -----------------------------------------------------------------------------
if ! ip netns add "$NS1" 2>"$WORK/netns.err"; then
  say "SKIP: 'ip netns add' is not permitted here: $(cat "$WORK/netns.err")"
  exit $SKIP
fi
CREATED_NS+=("$NS1")
ip netns add "$NS2"
CREATED_NS+=("$NS2")
# One veth pair, an end in each namespace, both named $IFACE: a point-to-point link.
ip link add "$IFACE" netns "$NS1" type veth peer name "$IFACE" netns "$NS2"
ip -n "$NS1" addr add "$ADDR1/24" dev "$IFACE"
ip -n "$NS2" addr add "$ADDR2/24" dev "$IFACE"
for ns in "$NS1" "$NS2"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$IFACE" up
  # `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts: the host names resolve to
  # the namespace addresses inside the nodes only.
  mkdir -p "/etc/netns/$ns"
  printf '127.0.0.1 localhost\n%s %s\n%s %s\n' "$ADDR1" "$HOST1" "$ADDR2" "$HOST2" \
    >"/etc/netns/$ns/hosts"
done
say "nodes: $HOST1 = $ADDR1 (netns $NS1), $HOST2 = $ADDR2 (netns $NS2), veth $IFACE"

# The launch agent: mpirun calls it as `agent HOST COMMAND...` the way it would call ssh. It runs
# the command inside the host's namespace, with its own hostname (a UTS namespace), through a
# shell as sshd would.
AGENT="$WORK/netns-agent.sh"
cat >"$AGENT" <<EOF
#!/bin/sh
host=\$1; shift
case "\$host" in
  $HOST1) ns=$NS1 ;;
  $HOST2) ns=$NS2 ;;
  *) echo "netns-agent: unknown host '\$host'" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c 'hostname "\$0" && exec sh -c "\$1"' "\$host" "\$*"
EOF
chmod +x "$AGENT"
printf '%s slots=2\n%s slots=2\n' "$HOST1" "$HOST2" >"$WORK/hostfile"

# mpirun itself runs on node 1, as on a cluster's first node.
on_node1() { ip netns exec "$NS1" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$HOST1" "$@"; }

# --- the job -----------------------------------------------------------------------------------
# Tiny llama, synthetic data, 6 steps, dropout on (so the RNG streams must also line up).
cat >"$WORK/tiny.ini" <<EOF
[model]
vocab_size = 260
hidden_size = 32
num_layers = 2
num_heads = 4
intermediate_size = 64
max_position_embeddings = 64
dropout = 0.1
[train]
steps = 6
global_batch = 4
micro_batch = 2
seq_len = 32
log_every = 1
[data]
source = synthetic
synthetic_samples = 64
max_eval_samples = 8
[parallel]
tp = 2
[checkpoint]
keep_last = 0
EOF

# Flags every run shares: root and 4 ranks on 2 cores need --allow-run-as-root --oversubscribe;
# --bind-to none so the two "nodes" (same cores) do not bind ranks on top of each other; one
# intra-op thread per rank everywhere so single- and multi-node runs compute identically.
MPI_COMMON=(--allow-run-as-root --oversubscribe --bind-to none -np 4
            -x OMP_NUM_THREADS=1 -x SHARDTUNE_THREADS=1)
# Two nodes: the hostfile, the agent, TCP only, on the veth.
# shellcheck disable=SC2054  # "tcp,self" is one value
MPI_TWO_NODES=(--hostfile "$WORK/hostfile" --mca plm_rsh_agent "$AGENT"
               --mca pml ob1 --mca btl tcp,self
               --mca btl_tcp_if_include "$IFACE" --mca oob_tcp_if_include "$IFACE")

# run NAME MPIRUN_ARGS... -- SHARDTUNE_ARGS...: trains with out_dir and checkpoint dir under
# $WORK/NAME, output in $WORK/NAME.log; returns mpirun's exit status.
run() {
  local name=$1; shift
  local mpi=()
  while [ "$1" != "--" ]; do mpi+=("$1"); shift; done
  shift
  # In the background so that a signal to this script runs the cleanup at once.
  on_node1 mpirun "${MPI_COMMON[@]}" "${mpi[@]}" "$BIN" train --config "$WORK/tiny.ini" \
    --train.out_dir="$WORK/$name" --checkpoint.dir="$WORK/$name/ckpt" "$@" \
    >"$WORK/$name.log" 2>&1 &
  JOB_PID=$!
  local rc=0
  wait "$JOB_PID" || rc=$?
  JOB_PID=""
  return $rc
}
show_log() { say "--- $1.log (last 40 lines)"; tail -n 40 "$WORK/$1.log" >&2; }
# The per-step losses of a metrics.jsonl, one "step loss grad_norm" line each (eval lines
# skipped), printed exactly as written.
losses() {
  sed -n 's/.*"grad_norm":\([^,}]*\).*"loss":\([^,}]*\).*"step":\([0-9]*\).*/\3 \2 \1/p' "$1"
}
same_checkpoint() {
  if ! h5diff "$1" "$2" >"$WORK/h5diff.txt" 2>&1; then
    head -n 20 "$WORK/h5diff.txt" >&2
    return 1
  fi
}

T_START=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# (1) Reference: the same job on one node (node 1 only, default transports incl. shared memory).
t=$(date +%s.%N)
run single -- || { show_log single; fail "single-node run failed"; }
say "single node: TP=2 x DP=2, 4 ranks on $HOST1 ($(elapsed "$t") s)"
grep -q "node 0/1 (local rank 0/4)" "$WORK/single.log" \
  || { show_log single; fail "single-node startup line"; }

# (2) Two nodes, ranks in blocks of 2 per node (--map-by ppr:2:node): TP groups {0,1} {2,3}.
t=$(date +%s.%N)
run two "${MPI_TWO_NODES[@]}" --map-by ppr:2:node --display-map -- \
  || { show_log two; fail "two-node run failed"; }
say "two nodes: 2 ranks on $HOST1 + 2 ranks on $HOST2 over TCP ($(elapsed "$t") s)"
startup=$(grep -m1 "shardtune .* | rank 0/4" "$WORK/two.log") \
  || { show_log two; fail "no startup line"; }
say "startup: ${startup#*] }"
grep -A3 "Data for node: $HOST2" "$WORK/two.log" | grep -q "Process rank: 3" \
  || { show_log two; fail "ranks 2 and 3 were not placed on $HOST2"; }
# (a) ShardTune found 2 nodes of 2 ranks and no TP group spanning them.
[[ $startup == *"node 0/2 (local rank 0/2)"* ]] \
  || fail "(a) ShardTune did not see 2 nodes of 2 ranks"
if grep -q "TP groups span nodes" "$WORK/two.log"; then fail "(a) a TP group spans nodes"; fi
say "(a) ok: ShardTune sees node 0/2 with 2 local ranks, and no TP group spans the nodes"

# (b) Same losses, bitwise-identical final checkpoint.
losses "$WORK/single/metrics.jsonl" >"$WORK/single.losses"
losses "$WORK/two/metrics.jsonl" >"$WORK/two.losses"
[ "$(wc -l <"$WORK/single.losses")" -eq 6 ] || fail "(b) expected 6 logged steps"
cmp -s "$WORK/single.losses" "$WORK/two.losses" \
  || { diff "$WORK/single.losses" "$WORK/two.losses" >&2; fail "(b) losses differ"; }
same_checkpoint "$WORK/single/ckpt/step-00000006.h5" "$WORK/two/ckpt/step-00000006.h5" \
  || fail "(b) final checkpoints differ"
say "(b) ok: the 6 losses and grad norms are identical, final checkpoints identical (h5diff)"
say "    final: $(tail -n1 "$WORK/two.losses" | awk '{print "step " $1 ", loss " $2}')"

# Control for (a): round-robin placement (--map-by node) puts ranks 0 and 1 on different nodes,
# and ShardTune must say so.
run spanned "${MPI_TWO_NODES[@]}" --map-by node -- --train.steps=1 --checkpoint.save_final=false \
  || { show_log spanned; fail "round-robin control run failed"; }
grep -q "2 of 2 TP groups span nodes" "$WORK/spanned.log" \
  || { show_log spanned; fail "(a) control: no warning when TP groups span nodes"; }
say "(a) control ok: with --map-by node ShardTune warns: 2 of 2 TP groups span nodes"

# (d) Lose a node inside the checkpoint write of step 4 (the test hook holds every rank after it
# wrote its data, before the file is closed), checkpointing every step.
mkdir -p "$WORK/lost"
on_node1 mpirun "${MPI_COMMON[@]}" "${MPI_TWO_NODES[@]}" --map-by ppr:2:node \
  -x SHARDTUNE_TEST_CHECKPOINT_PAUSE_S=600 -x SHARDTUNE_TEST_CHECKPOINT_PAUSE_STEP=4 \
  "$BIN" train --config "$WORK/tiny.ini" --train.out_dir="$WORK/lost" \
  --checkpoint.dir="$WORK/lost/ckpt" --checkpoint.every=1 >"$WORK/node-loss.log" 2>&1 &
JOB_PID=$!
paused_ranks() {
  local f n=0
  for f in "$WORK/lost/ckpt"/pause-rank*.pid; do [ -s "$f" ] && n=$((n + 1)); done
  echo "$n"
}
for _ in $(seq 1 1200); do
  n=$(paused_ranks)
  [ "$n" -eq 4 ] && break
  kill -0 "$JOB_PID" 2>/dev/null || { show_log node-loss; fail "(d) the job ended before step 4"; }
  sleep 0.1
done
[ "$n" -eq 4 ] || { show_log node-loss; fail "(d) the ranks never reached the write of step 4"; }
victims=$(ps -o comm= -p "$(ip netns pids "$NS2" | paste -sd,)" | sort | uniq -c \
  | awk '{printf "%s%s x%d", (NR > 1 ? ", " : ""), $2, $1}')
t_kill=$(date +%s.%N)
for pid in $(ip netns pids "$NS2"); do kill -KILL "$pid" 2>/dev/null || true; done
# Hang detection only: ranks paused in the write would sleep 600 s unless the job ends them.
status=0
for _ in $(seq 1 600); do kill -0 "$JOB_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$JOB_PID" 2>/dev/null; then
  show_log node-loss
  fail "(d) mpirun still runs 60 s after node loss"
fi
wait "$JOB_PID" || status=$?
JOB_PID=""
end_s=$(elapsed "$t_kill")
left=$(ip netns pids "$NS1" | wc -l)
if [ "$left" -ne 0 ]; then
  ps -o pid,args -p "$(ip netns pids "$NS1" | paste -sd,)" >&2
  fail "(d) $left processes left on $HOST1"
fi
[ "$status" -ne 0 ] || fail "(d) mpirun exited 0 after losing a node"
say "(d) killed every process on $HOST2 ($victims) inside the write of step 4:"
say "    mpirun exited $status after $end_s s; no process left on $HOST1"
[ ! -e "$WORK/lost/ckpt/step-00000004.h5" ] \
  || fail "(d) the interrupted step-4 checkpoint was published"
latest=$("$BIN" ckpt inspect "$WORK/lost/ckpt" | sed -n 's/^step: //p')
[ "$latest" = 3 ] || fail "(d) latest checkpoint is step '$latest', expected 3"
complete=("$WORK/lost/ckpt"/step-*.h5)
say "    left behind: latest = step 3 (${#complete[@]} complete checkpoints)"

# (c) Resume the two-node run's checkpoint on ONE node and finish: same as uninterrupted.
t=$(date +%s.%N)
run lost -- --checkpoint.every=1 --resume auto \
  || { show_log lost; fail "(c) resume on one node failed"; }
grep -q "resumed from $WORK/lost/ckpt/step-00000003.h5 at step 3" "$WORK/lost.log" \
  || { show_log lost; fail "(c) did not resume from step 3"; }
grep -q "node 0/1 (local rank 0/4)" "$WORK/lost.log" || fail "(c) resume did not run on one node"
# metrics.jsonl is appended to: its last 3 step lines are the resumed run's.
losses "$WORK/lost/metrics.jsonl" | tail -n 3 >"$WORK/lost.losses"
awk '$1 > 3' "$WORK/single.losses" | cmp -s - "$WORK/lost.losses" \
  || { diff <(awk '$1 > 3' "$WORK/single.losses") "$WORK/lost.losses" >&2
       fail "(c) losses of steps 4-6 differ"; }
same_checkpoint "$WORK/single/ckpt/step-00000006.h5" "$WORK/lost/ckpt/step-00000006.h5" \
  || fail "(c) resumed final checkpoint differs from the uninterrupted run"
say "(c) ok: --resume auto on one node continued from step 3 ($(elapsed "$t") s); steps 4-6 and the"
say "    final checkpoint are identical to the uninterrupted run"
say "all checks passed in $(elapsed "$T_START") s"
