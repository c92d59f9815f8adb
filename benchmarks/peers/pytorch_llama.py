#!/usr/bin/python3
"""Peer baseline for bench_train: the same llama in PyTorch eager (Debian python3-torch), the
model users would otherwise train. Same shapes, AdamW, synthetic tokens, FLOP formula (PaLM:
6 * matmul params + 12 * layers * seq * hidden per token) and GEMM reference as bench_train.
Run with /usr/bin/python3 (Debian's torch imports only there). Prints one JSON line."""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

H, L, NH, FFN, V, T, B = 512, 8, 8, 1376, 8192, 256, 8
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 6
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
torch.manual_seed(0)


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat((-x2, x1), -1) * sin


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(H), RMSNorm(H)
        self.q, self.k, self.v, self.o = (nn.Linear(H, H, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(H, FFN, bias=False), nn.Linear(H, FFN, bias=False)
        self.down = nn.Linear(FFN, H, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.input_layernorm(x)
        q, k, v = (p(h).view(b, t, NH, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1)) + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, H)
        x = x + self.o(y)
        h = self.post_attention_layernorm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, H)
        self.layers = nn.ModuleList(Block() for _ in range(L))
        self.norm, self.lm_head = RMSNorm(H), nn.Linear(H, V, bias=False)
        d = H // NH
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        f = torch.outer(torch.arange(T).float(), inv)
        e = torch.cat((f, f), -1)
        self.cos, self.sin = e.cos(), e.sin()
        self.mask = torch.full((T, T), float("-inf")).triu(1)

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        return self.lm_head(self.norm(x))


def gemm_gflops(n=2048, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


peak = gemm_gflops()
model = Llama()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
params = sum(p.numel() for p in model.parameters())


def step():
    ids = torch.randint(0, V, (B, T))
    logits = model(ids)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=False)


step()
t0 = time.perf_counter()
for _ in range(STEPS - 1):
    step()
s = (time.perf_counter() - t0) / (STEPS - 1)
tps = B * T / s
matmul_params = L * (4 * H * H + 3 * H * FFN) + V * H
flops = (6 * matmul_params + 12 * L * T * H) * tps
print(json.dumps({"peer": "pytorch-eager", "torch": torch.__version__, "params": params,
                  "threads": torch.get_num_threads(), "tokens_per_s": round(tps, 1),
                  "step_s": round(s, 3), "model_gflops": round(flops / 1e9, 1),
                  "gemm_gflops": round(peak, 1), "mfu": round(flops / 1e9 / peak, 3)}))
