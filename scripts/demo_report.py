"""The demo's result (scripts/demo_run.sh): one table of the four strategies on held-out synsets,
and a PNG of their loss curves.

usage: demo_report.py RUNS NAME STRATEGY...   (reads RUNS/NAME-<strategy>/{metrics.jsonl,
score.txt} and RUNS/NAME-pretrained.score, as demo_run.sh writes them; writes RUNS/NAME.png)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys


def read_score(path):
    """`shardtune score` prints "key value" lines."""
    score = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                score[parts[0]] = parts[1]
    for key in ("eval_loss", "label_accuracy", "majority_accuracy", "label_examples"):
        if key not in score:
            sys.exit(f"demo_report: {path} has no '{key}' line")
    return score


def read_metrics(path):
    train, evals = [], []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if "eval_loss" in record:
                evals.append((record["step"], record["eval_loss"]))
            elif "loss" in record:
                train.append((record["step"], record["loss"], record["step_s"]))
    return train, evals


def human(n):
    n = float(n)
    for unit in ("", "K", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}T"


def plot(runs, name, curves):
    if shutil.which("gnuplot") is None:
        print("demo_report: gnuplot not found, no plot (scripts/setup.sh installs gnuplot-nox)",
              file=sys.stderr)
        return None
    png = os.path.join(runs, name + ".png")
    lines = ["set terminal pngcairo size 900,560 font 'sans,11'",
             f"set output '{png}'",
             f"set title '{name}: held-out loss (points) and training loss (dashed)'",
             "set xlabel 'step'", "set ylabel 'loss (nats per label token)'",
             "set key top right", "set grid"]
    plots = []
    for i, (name, (train, evals)) in enumerate(curves.items(), start=1):
        lines.append(f"$train{i} << EOD")
        lines += [f"{s} {l}" for s, l, _ in train] + ["EOD"]
        lines.append(f"$eval{i} << EOD")
        lines += [f"{s} {l}" for s, l in evals] + ["EOD"]
        plots.append(f"$train{i} with lines lc {i} dt 2 notitle")
        plots.append(f"$eval{i} with linespoints lc {i} pt 7 lw 2 title '{name}'")
    lines.append("plot " + ", ".join(plots))
    script = os.path.join(runs, name + ".gp")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["gnuplot", script], check=True)
    return png


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    runs, name, strategies = sys.argv[1], sys.argv[2], sys.argv[3:]
    before = read_score(os.path.join(runs, f"{name}-pretrained.score"))
    rows, curves = [], {}
    for s in strategies:
        folder = os.path.join(runs, f"{name}-{s}")
        score = read_score(os.path.join(folder, "score.txt"))
        train, evals = read_metrics(os.path.join(folder, "metrics.jsonl"))
        # Step 1 carries the first step's one-off costs; the median of the others is the rate.
        times = [t for step, _, t in train if step > 1] or [t for _, _, t in train]
        rows.append((s, int(score["trainable_parameters"]), int(score["optimizer_state_bytes"]),
                     statistics.median(times) * 1000, float(score["eval_loss"]),
                     float(score["label_accuracy"])))
        curves[s] = (train, evals)
    header = ("strategy", "trainable", "AdamW state", "step ms", "held-out loss", "accuracy")
    table = [header]
    for s, trainable, state, ms, loss, acc in rows:
        table.append((s, human(trainable), human(state) + "B", f"{ms:.0f}", f"{loss:.3f}",
                      f"{100 * acc:.1f}%"))
    table.append(("pretrained only", "-", "-", "-", f"{float(before['eval_loss']):.3f}",
                  f"{100 * float(before['label_accuracy']):.1f}%"))
    table.append((f"majority class ({before.get('majority_label', '?')})", "-", "-", "-", "-",
                  f"{100 * float(before['majority_accuracy']):.1f}%"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(f"held-out synsets: {before['label_examples']} (label = exact greedy match)")
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in
                        enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    png = plot(runs, name, curves)
    if png:
        print(f"loss curves: {png}")


if __name__ == "__main__":
    main()
