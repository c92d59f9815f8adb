#!/usr/bin/python3
"""PyTorch 1.13 eager peer of bench_train: the same llama, batch, dtype and thread count, written
the way a PyTorch user would train it on CPU (docs/benchmarks-profile.md argues each choice).

  /usr/bin/python3 benchmarks/peers/torch_llama.py [--threads 2] [--dtype fp32|bf16] [--steps 6]
  mpirun -np 2 --bind-to core /usr/bin/python3 benchmarks/peers/torch_llama.py --threads 1
      (DistributedDataParallel over gloo; rank and world from OMPI_COMM_WORLD_RANK/SIZE)

Model: Hugging Face's LlamaForCausalLM structure (separate q/k/v/o, gate/up/down, RMSNorm in fp32,
rotate-half RoPE, untied LM head), default the ~30M config of bench_train. Training: synthetic
tokens, next-token cross-entropy over the 255 shifted targets of each 256-token row, clip to 1.0,
AdamW(lr 1e-4, betas 0.9/0.95), one warm-up step then timed steps. bf16: torch.autocast("cpu",
torch.bfloat16) around the forward (fp32 master weights and AdamW state), the loss in fp32.
The --variant.* switches exist to measure choices the peers differ in; their defaults are the
idiomatic ones. Prints one JSON line (rank 0). Debian's torch imports only under /usr/bin/python3.
"""
import argparse
import contextlib
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=6, help="steps including one warm-up step")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--ffn", type=int, default=1376)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="micro-batch per rank")
    p.add_argument("--lora", type=int, default=0,
                   help="LoRA rank on every linear layer of the blocks (0 = full fine-tuning)")
    p.add_argument("--profile", default="", help="write a per-op TSV (profile_step's format)")
    # Choices the peers differ in (docs/benchmarks-profile.md, "The peer").
    p.add_argument("--variant.mask", dest="mask", default="cached",
                   choices=["cached", "per_forward", "masked_fill"],
                   help="cached: additive [T, T] causal mask built once; per_forward: HF's "
                        "[B, 1, T, T] additive mask built each forward; masked_fill: nanoGPT's")
    p.add_argument("--variant.adamw", dest="adamw", default="foreach", choices=["foreach", "loop"])
    p.add_argument("--variant.zero_grad", dest="zero_grad", default="none",
                   choices=["none", "zeros"], help="zero_grad(set_to_none=True) or =False")
    p.add_argument("--variant.shift", dest="shift", default="labels", choices=["labels", "logits"],
                   help="labels: shift the targets (no copy of the logits); logits: HF's "
                        "logits[:, :-1].contiguous()")
    return p.parse_args()


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, -1)
    return torch.cat((-x2, x1), -1)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.nh, self.hd = a.heads, a.hidden // a.heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            nn.Linear(a.hidden, a.hidden, bias=False) for _ in range(4))
        self.mask_kind = a.mask

    def forward(self, x, cos, sin, mask):
        b, t, h = x.shape
        q, k, v = (p(x).view(b, t, self.nh, self.hd).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        att = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        if self.mask_kind == "masked_fill":
            att = att.masked_fill(mask, float("-inf"))
        else:
            att = att + mask
        att = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, h)
        return self.o_proj(y)


class Mlp(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.gate_proj = nn.Linear(a.hidden, a.ffn, bias=False)
        self.up_proj = nn.Linear(a.hidden, a.ffn, bias=False)
        self.down_proj = nn.Linear(a.ffn, a.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.input_layernorm = RMSNorm(a.hidden)
        self.self_attn = Attention(a)
        self.post_attention_layernorm = RMSNorm(a.hidden)
        self.mlp = Mlp(a)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.embed_tokens = nn.Embedding(a.vocab, a.hidden)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.hidden)
        self.lm_head = nn.Linear(a.hidden, a.vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
        d = a.hidden // a.heads
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        f = torch.outer(torch.arange(a.seq).float(), inv)
        e = torch.cat((f, f), -1)
        # Constant tables as plain attributes, not buffers: DDP would broadcast buffers at start,
        # and gloo has no bool type.
        self.cos, self.sin = e.cos(), e.sin()  # [T, d]
        self.causal = torch.ones(a.seq, a.seq, dtype=torch.bool).tril()
        self.additive = torch.zeros(a.seq, a.seq).masked_fill(~self.causal, float("-inf"))

    def mask(self, b, t, dtype):
        if self.a.mask == "masked_fill":
            return ~self.causal[:t, :t]
        if self.a.mask == "cached":
            return self.additive[:t, :t].to(dtype)
        # Hugging Face 4.2x: expand the [B, T] padding mask and combine it with the causal one into
        # a [B, 1, T, T] additive mask at every forward.
        pad = torch.ones(b, t, dtype=torch.bool)
        keep = self.causal[:t, :t][None, None] & pad[:, None, None, :]
        return torch.zeros(b, 1, t, t, dtype=dtype).masked_fill(~keep, torch.finfo(dtype).min)

    def forward(self, ids):
        b, t = ids.shape
        x = self.embed_tokens(ids)
        cos, sin = self.cos[:t].to(x.dtype), self.sin[:t].to(x.dtype)
        mask = self.mask(b, t, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))


class LoraLinear(nn.Module):
    """PEFT's LoRA on a frozen nn.Linear: y = base(x) + (alpha / r) * B(A(x)), B zero-initialised,
    alpha = 2r (ShardTune's lora defaults: r 8, alpha 16)."""

    def __init__(self, base, r):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scale = 2.0

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


def add_lora(model, r):
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.layers:
        for parent in (block.self_attn, block.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, LoraLinear(child, r))


def gemm_gflops(dtype, n=2048, reps=10):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("RANK", "0")))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    if world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    cdtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    peak = gemm_gflops(cdtype)
    model = Llama(a)
    if a.lora > 0:
        add_lora(model, a.lora)
    params = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    if world > 1:
        model = DistributedDataParallel(model, bucket_cap_mb=25)
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.95),
                            foreach=(a.adamw == "foreach"))
    gen = torch.Generator().manual_seed(1 + rank)

    profiling = [False]

    def phase(name):  # named ranges for the per-op profile only
        if profiling[0]:
            return torch.autograd.profiler.record_function("phase::" + name)
        return contextlib.nullcontext()

    def step():
        ids = torch.randint(0, a.vocab, (a.batch, a.seq), generator=gen)
        with phase("forward"), torch.autocast("cpu", dtype=torch.bfloat16,
                                              enabled=(a.dtype == "bf16")):
            logits = model(ids)
        with phase("loss"):
            if a.shift == "labels":
                labels = torch.cat((ids[:, 1:], torch.full((a.batch, 1), -100)), 1)
                loss = F.cross_entropy(logits.float().view(-1, a.vocab), labels.view(-1))
            else:
                loss = F.cross_entropy(logits[:, :-1].float().contiguous().view(-1, a.vocab),
                                       ids[:, 1:].reshape(-1))
        with phase("backward"):
            loss.backward()
        with phase("clip"):
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        with phase("optimizer"):
            opt.step()
        with phase("zero_grad"):
            opt.zero_grad(set_to_none=(a.zero_grad == "none"))
        return loss

    step()
    timed = a.steps - 1
    if a.profile:
        profiling[0] = True
        with torch.autograd.profiler.profile(record_shapes=True) as prof:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(timed):
                step()
            s, cpu = time.perf_counter() - t0, time.process_time() - c0
        write_profile(prof, a.profile, s, cpu, timed, a)
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(timed):
            step()
        s, cpu = time.perf_counter() - t0, time.process_time() - c0
    s /= timed
    tps = a.batch * a.seq * world / s
    matmul_params = a.layers * (4 * a.hidden**2 + 3 * a.hidden * a.ffn) + a.vocab * a.hidden
    flops = (6 * matmul_params + 12 * a.layers * a.seq * a.hidden) * tps
    if rank == 0:
        print(json.dumps({
            "peer": "pytorch-eager" + ("-ddp-gloo" if world > 1 else ""), "torch": torch.__version__,
            "dtype": a.dtype, "lora": a.lora, "params": params, "world": world, "threads": torch.get_num_threads(),
            "variant": {"mask": a.mask, "adamw": a.adamw, "zero_grad": a.zero_grad,
                        "shift": a.shift},
            "tokens_per_s": round(tps, 1), "step_s": round(s, 3),
            "cpu_s_per_step": round(cpu / timed, 3), "model_gflops": round(flops / 1e9, 1),
            "gemm_gflops": round(peak, 1), "mfu": round(flops / 1e9 / (peak * world), 3)}))


def write_profile(prof, path, wall_s, cpu_s, steps, a):
    """One line per (phase, top-level range, op, shapes of the top range): profile_step's TSV."""
    rows = {}
    for e in prof.function_events:
        if e.name.startswith("phase::"):
            continue
        chain = [e]
        while chain[-1].cpu_parent is not None:
            chain.append(chain[-1].cpu_parent)
        phase = "other"
        if chain[-1].name.startswith("phase::"):
            phase = chain.pop().name[len("phase::"):]
        top = chain[-1]
        name = top.name
        shape, op_shape = (";".join("[" + ",".join(str(d) for d in s) + "]"
                                    for s in (ev.input_shapes or [])) for ev in (top, e))
        key = (phase, name, e.name, shape, op_shape)
        calls, us = rows.get(key, (0, 0.0))
        rows[key] = (calls + 1, us + e.self_cpu_time_total)
    with open(path, "w") as f:
        f.write(f"# program=pytorch threads={torch.get_num_threads()} steps={steps} "
                f"wall_us={wall_s * 1e6} cpu_us={cpu_s * 1e6} tokens_per_step={a.batch * a.seq} "
                f"hidden={a.hidden} heads={a.heads} ffn={a.ffn} vocab={a.vocab} seq={a.seq} "
                f"batch={a.batch}\n")
        f.write("phase\ttop\top\tshape\top_shape\tcalls\tself_us\n")
        for (phase, top, op, shape, op_shape), (calls, us) in sorted(rows.items()):
            f.write(f"{phase}\t{top}\t{op}\t{shape}\t{op_shape}\t{calls}\t{us}\n")


if __name__ == "__main__":
    main()
