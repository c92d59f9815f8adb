#!/usr/bin/env python3
"""Groups a per-op profile (TSV from build/benchmarks/profile_step or
benchmarks/peers/torch_llama.py --profile) into op families of a llama step and prints a table:
family, ms per step, share of the profiled op time. One classifier for both programs, so their
tables compare (docs/benchmarks-profile.md). Rules use the op name, the outermost range it ran
under (the aten op or autograd node) and the tensor shapes, matched against the model dims in the
TSV header (B, T, H, heads, F, V). Standard library only.

  benchmarks/profile_families.py FILE.tsv [FILE2.tsv ...]
"""
import collections
import sys

VIEWS = {"aten::t", "aten::transpose", "aten::view", "aten::reshape", "aten::as_strided",
         "aten::select", "aten::slice", "aten::narrow", "aten::unsqueeze", "aten::expand",
         "aten::detach", "detach", "aten::_unsafe_view", "aten::empty", "aten::empty_like",
         "aten::empty_strided", "aten::resize_", "aten::_reshape_alias", "aten::squeeze",
         "aten::permute", "aten::chunk", "aten::split", "aten::alias", "aten::result_type",
         "aten::lift_fresh", "aten::is_nonzero", "aten::_has_compatible_shallow_copy_type",
         "aten::contiguous", "aten::to", "aten::expand_as", "aten::clone"}
MASK_OPS = ("cumsum", "tril", "triu", "eye", "ones", "logical_not", "bitwise", "__and__",
            "__or__", "clamp_min", "arange", "masked_fill", "zeros", "cos", "sin", "outer",
            "full", "ne", "ge", "lt", "eq", "__ior__", "__iand__")
GEMM = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul"}


def shapes(s):
    out = []
    for part in s.split(";"):
        part = part.strip("[]")
        out.append(tuple(int(x) for x in part.split(",") if x) if part else ())
    return out


def classify(row, d):
    phase, top, op = row["phase"], row["top"], row["op"]
    if phase == "optimizer":
        return "AdamW"
    if phase == "zero_grad":
        return "zero_grad"
    if phase == "clip":
        return "clip (grad norm)"
    node = top.split(": ", 1)[1] if top.startswith("autograd::engine::evaluate_function") else ""
    if op.startswith("autograd::engine::evaluate_function") or op == node or op.endswith("Backward0") \
            or op.endswith("Backward1"):
        return "autograd engine (node bookkeeping)"
    if "AccumulateGrad" in node:
        return "grad accumulation"
    B, T, H, NH, F, V = d["batch"], d["seq"], d["hidden"], d["heads"], d["ffn"], d["vocab"]
    hd = H // NH
    all_shapes = shapes(row["op_shape"]) + shapes(row["shape"])
    if op in GEMM:
        if op in ("aten::bmm", "aten::baddbmm") or node.startswith("Bmm"):
            return "attention GEMMs (QK^T, PV)"
        if any(s and s[-1] == V or (len(s) == 2 and s[0] == V) for s in all_shapes):
            return "GEMM: LM head"
        return "GEMM: projections and MLP"
    if op in VIEWS and not (op == "aten::clone" and phase == "backward"):
        return "views, dispatch, allocation"
    if "embedding" in op or "Embedding" in node or "index_select" in op:
        return "embedding"
    if any(V in s for s in all_shapes) or "log_softmax" in op or "nll_loss" in op \
            or "LogSoftmax" in node or "NllLoss" in node or "cross_entropy" in top:
        return "cross-entropy over the vocabulary (incl. logits copies)"
    if "softmax" in op or "Softmax" in node:
        return "attention softmax"
    if any(len(s) >= 2 and s[-2:] == (T, T) for s in all_shapes):
        if phase == "forward" and any(k in op for k in MASK_OPS) and \
                not any(len(s) == 4 and s[1] == NH for s in all_shapes):
            return "mask and positions"
        return "attention scale and mask add"
    if "silu" in op or "Silu" in node or any(s and s[-1] == F for s in all_shapes):
        return "SwiGLU (silu, product)"
    if any(len(s) >= 2 and s[-2:] == (T, hd) for s in all_shapes) or \
            any(len(s) == 4 and s[-1] == hd for s in all_shapes):
        if top == "aten::matmul" or "copy" in op and phase == "forward" and top != "aten::cat":
            return "attention copies (contiguous q/k/v, heads)"
        return "RoPE"
    if phase == "forward" and any(k in op for k in MASK_OPS):
        return "mask and positions"
    if any(s in ((B, T, 1),) for s in all_shapes) or op in ("aten::pow", "aten::mean", "aten::rsqrt") \
            or any(k in node for k in ("Pow", "Mean", "Rsqrt")):
        return "RMSNorm"
    if any(s == (H,) for s in all_shapes):
        return "RMSNorm"
    if op in ("aten::add", "aten::add_") and any(s == (B, T, H) for s in all_shapes):
        return "residual adds"
    if "copy" in op or "fill" in op or "zero" in op:
        return "other copies and fills"
    return "other"


def load(path):
    with open(path) as f:
        header = f.readline().lstrip("# ").split()
        meta = {}
        for kv in header:
            k, v = kv.split("=")
            meta[k] = float(v) if k.endswith("_us") else (int(v) if v.isdigit() else v)
        cols = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(cols, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    return meta, rows


def main():
    for path in sys.argv[1:]:
        meta, rows = load(path)
        fam = collections.Counter()
        for r in rows:
            fam[classify(r, meta)] += float(r["self_us"])
        total = sum(fam.values())
        steps = meta["steps"]
        print(f"## {path}: {meta['program']}, {meta['threads']} thread(s), {steps} steps, "
              f"wall {meta['wall_us'] / steps / 1e3:.0f} ms/step, "
              f"cpu {meta.get('cpu_us', 0) / steps / 1e3:.0f} ms/step, "
              f"ops {total / steps / 1e3:.0f} ms/step")
        print("| family | ms/step | share |")
        print("| --- | ---: | ---: |")
        for name, us in fam.most_common():
            print(f"| {name} | {us / steps / 1e3:.1f} | {100 * us / total:.1f}% |")
        print()


if __name__ == "__main__":
    main()
