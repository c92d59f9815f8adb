#!/usr/bin/python3
"""An independent PyTorch reference for Hugging Face model semantics (ShardTune's tests/hf*).

Written from the semantics of transformers' modeling files (modeling_llama.py, modeling_qwen2.py,
modeling_mistral.py, modeling_gpt2.py) and PEFT's LoRA and prefix-tuning code, without importing
either library and without any ShardTune code: safetensors files are written and read here by hand
(struct + json), every model is computed in float64.

  generate OUT       writes small random models in HF layout (config.json, safetensors, one of them
                     sharded with model.safetensors.index.json), a fixed batch with padding and -100
                     labels, the logits and loss HF semantics give, and each parameter in ShardTune's
                     naming and [out, in] layout (params.safetensors) for per-tensor checks.
  check-hf DIR ...   computes the logits of an exported HF folder and compares them with ShardTune's.
  check-peft ...     applies a PEFT adapter (LoRA or prefix tuning) to a base folder as PEFT does and
                     compares the logits with ShardTune's.
  walkthrough OUT    writes the tiny Llama, Qwen2 and GPT-2 folders of docs/hf.md's walkthrough, each
                     with a byte-level BPE tokenizer.json, and its data: text records to train on and
                     pre-tokenized records (the tokenizer's byte ids) to evaluate on.
  loss --jsonl F DIR[,ADAPTER] ...
                     for each HF folder DIR (with the PEFT adapter ADAPTER applied, if given) the
                     mean loss per target token over the input_ids records of F, as `shardtune
                     eval` reports it; one line each: the loss with 6 decimals, then the spec.

Facts relied on (transformers):
  - Llama/Qwen2/Mistral: RMSNorm w * x / sqrt(mean(x^2) + eps); rotary embedding "rotate half" with
    inv_freq = theta^(-2i/d) and cos/sin of cat(freqs, freqs); grouped-query heads repeated with
    repeat_kv (kv head j serves q heads j*n_rep .. j*n_rep + n_rep - 1); scores scaled by d^-0.5;
    MLP down(silu(gate(x)) * up(x)); Qwen2's q/k/v projections have biases, o_proj none.
  - GPT-2: Conv1D y = x @ W + b with W [in, out]; c_attn output split into q | k | v; learned
    positions wpe; LayerNorm; gelu_new = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); LM head =
    wte; hub files keep keys without "transformer." and may hold h.N.attn.bias buffers.
  - Causal LM loss: logits[:, :-1] against labels[:, 1:], mean over labels != -100.
  - Positions: the model's default is arange(T); for left padding callers pass
    position_ids = cumsum(mask) - 1 (as generate() does), which this reference does for every row.
  - PEFT LoRA: W + scale * B @ A (transposed for Conv1D, fan_in_fan_out), scale = alpha / r or
    alpha / sqrt(r) (use_rslora). Prefix tuning: prompt_embeddings [P, L*2*token_dim] viewed as
    [P, L*2, heads, head_dim]; layer l's key is 2l and value 2l+1; the prefix sits in the KV cache
    unrotated, the attention mask gets P leading ones and position ids move by P.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch

DT = torch.float64

# ---- safetensors by hand --------------------------------------------------------------------

_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
          torch.int64: "I64"}
_TYPES = {v: k for k, v in _NAMES.items()}


def _raw(t):
    t = t.contiguous().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Tensors in dict order, header padded to 8 bytes (ShardTune's writer sorts; this one does not)."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        b = _raw(t)
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + end])
        dtype = _TYPES[e["dtype"]]
        if dtype in (torch.float16, torch.bfloat16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dtype) if raw else torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def read_folder(d, stem="model"):
    single = os.path.join(d, stem + ".safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(d, stem + ".safetensors.index.json")) as f:
        index = json.load(f)
    out = {}
    for name in sorted(set(index["weight_map"].values())):
        out.update(read_safetensors(os.path.join(d, name)))
    return out


# ---- models (float64) -----------------------------------------------------------------------

def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(pos, d, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=DT) / d))
    freqs = pos.to(DT)[..., None] * inv_freq  # [B, T, d/2]
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # [B, 1, T, d]
    return emb.cos(), emb.sin()


def repeat_kv(x, n_rep):
    b, kv, s, d = x.shape
    return x[:, :, None].expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)


def attend(q, k, v, visible):
    """q [B,H,T,d]; k, v [B,H,S,d]; visible [B,1,T,S] bool."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~visible, torch.finfo(DT).min)
    return torch.softmax(scores, dim=-1) @ v


def visibility(mask, prefix_len=0):
    """Causal and padding mask [B,1,T,P+T]: query i sees prefix keys and real keys j <= i."""
    b, t = mask.shape
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    vis = causal[None] & mask.bool()[:, None, :]
    if prefix_len:
        vis = torch.cat((torch.ones(b, t, prefix_len, dtype=torch.bool), vis), dim=-1)
    return vis[:, None]


def positions(mask):
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


def llama_logits(cfg, w, ids, mask, prefix=None, position_offset=0):
    """w: HF names -> float64; prefix: list per layer of (k, v) each [B, kv, P, d] or None."""
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    d = h // nh
    theta = cfg.get("rope_theta") or cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)
    eps = cfg.get("rms_norm_eps", 1e-6)
    qwen2 = cfg["model_type"] == "qwen2"
    b, t = ids.shape
    p = 0 if prefix is None else prefix[0][0].shape[2]
    x = w["model.embed_tokens.weight"][ids]
    cos, sin = rope_tables(positions(mask) + position_offset, d, theta)
    vis = visibility(mask, p)

    def lin(x, name, bias=False):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if bias else y

    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        a = rms_norm(x, w[pre + "input_layernorm.weight"], eps)
        q = lin(a, pre + "self_attn.q_proj", qwen2).view(b, t, nh, d).transpose(1, 2)
        k = lin(a, pre + "self_attn.k_proj", qwen2).view(b, t, nkv, d).transpose(1, 2)
        v = lin(a, pre + "self_attn.v_proj", qwen2).view(b, t, nkv, d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if prefix is not None:
            k = torch.cat((prefix[i][0], k), dim=2)
            v = torch.cat((prefix[i][1], v), dim=2)
        o = attend(q, repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv), vis)
        x = x + lin(o.transpose(1, 2).reshape(b, t, h), pre + "self_attn.o_proj")
        m = rms_norm(x, w[pre + "post_attention_layernorm.weight"], eps)
        gate = lin(m, pre + "mlp.gate_proj")
        x = x + lin(gate * torch.sigmoid(gate) * lin(m, pre + "mlp.up_proj"), pre + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return x @ head.T


def gpt2_logits(cfg, w, ids, mask):
    """w: GPT-2 names without the "transformer." prefix, Conv1D weights [in, out]."""
    h, nh = cfg["n_embd"], cfg["n_head"]
    d = h // nh
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    b, t = ids.shape
    x = w["wte.weight"][ids] + w["wpe.weight"][positions(mask)]
    vis = visibility(mask)

    def conv1d(x, name):
        return x @ w[name + ".weight"] + w[name + ".bias"]

    def heads(y):
        return y.view(b, t, nh, d).transpose(1, 2)

    for i in range(cfg["n_layer"]):
        pre = f"h.{i}."
        a = layer_norm(x, w[pre + "ln_1.weight"], w[pre + "ln_1.bias"], eps)
        q, k, v = conv1d(a, pre + "attn.c_attn").split(h, dim=-1)
        o = attend(heads(q), heads(k), heads(v), vis).transpose(1, 2).reshape(b, t, h)
        x = x + conv1d(o, pre + "attn.c_proj")
        m = layer_norm(x, w[pre + "ln_2.weight"], w[pre + "ln_2.bias"], eps)
        x = x + conv1d(gelu_new(conv1d(m, pre + "mlp.c_fc")), pre + "mlp.c_proj")
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].T


def causal_lm_loss(logits, labels):
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             labels[:, 1:].reshape(-1), ignore_index=-100)


def gpt2_weights(raw):
    """Hub keys (no prefix) or save_pretrained keys (transformer.) -> unprefixed; buffers dropped."""
    w = {}
    for name, t in raw.items():
        n = name[len("transformer."):] if name.startswith("transformer.") else name
        if n.endswith(".attn.bias") or n.endswith(".attn.masked_bias") or n == "lm_head.weight":
            continue
        w[n] = t.to(DT)
    return w


def logits_of(cfg, raw, ids, mask):
    if cfg["model_type"] == "gpt2":
        return gpt2_logits(cfg, gpt2_weights(raw), ids, mask)
    return llama_logits(cfg, {k: v.to(DT) for k, v in raw.items()}, ids, mask)


# ---- the generated cases -----------------------------------------------------------------------

CASES = {
    # name: (config, storage dtype, shards, extras)
    "llama_mha_untied": dict(config=dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=101, hidden_size=32,
        intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
        hidden_act="silu", attention_bias=False, mlp_bias=False, torch_dtype="float32"),
        dtype=torch.float32, shards=1),
    "llama_gqa_tied_sharded_bf16": dict(config=dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=97, hidden_size=48,
        intermediate_size=96, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
        max_position_embeddings=64, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, tie_word_embeddings=True,
        hidden_act="silu", torch_dtype="bfloat16"),
        dtype=torch.bfloat16, shards=3, inv_freq=True),
    "qwen2_gqa_bias_f16": dict(config=dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=103, hidden_size=32,
        intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
        hidden_act="silu", use_sliding_window=False, sliding_window=131072, max_window_layers=2,
        torch_dtype="float16"),
        dtype=torch.float16, shards=1),
    "mistral_mqa": dict(config=dict(
        architectures=["MistralForCausalLM"], model_type="mistral", vocab_size=64, hidden_size=32,
        intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
        max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=None,
        tie_word_embeddings=False, hidden_act="silu", torch_dtype="float32"),
        dtype=torch.float32, shards=1),
    "gpt2_hub": dict(config=dict(
        architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=99, n_embd=32, n_head=4,
        n_layer=2, n_positions=64, n_ctx=64, n_inner=None, layer_norm_epsilon=1e-5,
        activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
        scale_attn_weights=True, torch_dtype="float32"),
        dtype=torch.float32, shards=1, hub_keys=True),
    "gpt2_saved_sharded": dict(config=dict(
        architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=77, n_embd=32, n_head=2,
        n_layer=3, n_positions=32, n_inner=80, layer_norm_epsilon=1e-5,
        activation_function="gelu_new", tie_word_embeddings=True, torch_dtype="float32"),
        dtype=torch.float32, shards=2),
}

BATCH, SEQ = 3, 12


def random_weights(cfg, gen):
    """HF names -> float64 tensors (Conv1D layout for GPT-2), scaled so attention is sharp and the
    logits depend visibly on every parameter."""
    def normal(*shape, std):
        return torch.randn(*shape, generator=gen, dtype=DT) * std

    w = {}
    if cfg["model_type"] == "gpt2":
        h, v, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_layer"]
        f = cfg.get("n_inner") or 4 * h
        w["transformer.wte.weight"] = normal(v, h, std=0.5)
        w["transformer.wpe.weight"] = normal(cfg["n_positions"], h, std=0.5)
        for i in range(L):
            p = f"transformer.h.{i}."
            for ln in ("ln_1", "ln_2"):
                w[p + ln + ".weight"] = 1.0 + normal(h, std=0.2)
                w[p + ln + ".bias"] = normal(h, std=0.2)
            w[p + "attn.c_attn.weight"] = normal(h, 3 * h, std=1.2 / math.sqrt(h))
            w[p + "attn.c_attn.bias"] = normal(3 * h, std=0.2)
            w[p + "attn.c_proj.weight"] = normal(h, h, std=1.0 / math.sqrt(h))
            w[p + "attn.c_proj.bias"] = normal(h, std=0.2)
            w[p + "mlp.c_fc.weight"] = normal(h, f, std=1.0 / math.sqrt(h))
            w[p + "mlp.c_fc.bias"] = normal(f, std=0.2)
            w[p + "mlp.c_proj.weight"] = normal(f, h, std=1.0 / math.sqrt(f))
            w[p + "mlp.c_proj.bias"] = normal(h, std=0.2)
        w["transformer.ln_f.weight"] = 1.0 + normal(h, std=0.2)
        w["transformer.ln_f.bias"] = normal(h, std=0.2)
        return w
    h, v, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    kvd = nkv * (h // nh)
    f = cfg["intermediate_size"]
    w["model.embed_tokens.weight"] = normal(v, h, std=1.0)
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = normal(h, h, std=2.0 / math.sqrt(h))
        w[p + "self_attn.k_proj.weight"] = normal(kvd, h, std=2.0 / math.sqrt(h))
        w[p + "self_attn.v_proj.weight"] = normal(kvd, h, std=1.0 / math.sqrt(h))
        if cfg["model_type"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = normal(h, std=0.5)
            w[p + "self_attn.k_proj.bias"] = normal(kvd, std=0.5)
            w[p + "self_attn.v_proj.bias"] = normal(kvd, std=0.5)
        w[p + "self_attn.o_proj.weight"] = normal(h, h, std=1.0 / math.sqrt(h))
        w[p + "mlp.gate_proj.weight"] = normal(f, h, std=1.0 / math.sqrt(h))
        w[p + "mlp.up_proj.weight"] = normal(f, h, std=1.0 / math.sqrt(h))
        w[p + "mlp.down_proj.weight"] = normal(h, f, std=1.0 / math.sqrt(f))
        w[p + "input_layernorm.weight"] = 1.0 + normal(h, std=0.2)
        w[p + "post_attention_layernorm.weight"] = 1.0 + normal(h, std=0.2)
    w["model.norm.weight"] = 1.0 + normal(h, std=0.2)
    if not cfg.get("tie_word_embeddings", False):
        w["lm_head.weight"] = normal(v, h, std=1.0 / math.sqrt(h))
    return w


def shardtune_layout(cfg, w):
    """ShardTune's parameter names and layout: GPT-2 keeps "transformer." and its Conv1D weights
    become [out, in]; everything else is unchanged."""
    out = {}
    for name, t in w.items():
        conv1d = cfg["model_type"] == "gpt2" and t.dim() == 2 and (
            name.endswith("attn.c_attn.weight") or name.endswith("attn.c_proj.weight")
            or name.endswith("mlp.c_fc.weight") or name.endswith("mlp.c_proj.weight"))
        out[name] = (t.t() if conv1d else t).contiguous().to(torch.float32)
    return out


def make_batch(vocab, gen):
    ids = torch.randint(0, vocab, (BATCH, SEQ), generator=gen)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[1, 8:] = 0          # right padding
    mask[2, :4] = 0          # left padding
    ids = ids.masked_fill(mask == 0, 0)
    labels = ids.masked_fill(mask == 0, -100)
    labels[0, :3] = -100     # a masked prompt
    labels[2, 4] = -100      # the first real token of a left-padded row has no real context
    return ids, mask, labels


def write_case(out, name, spec, seed):
    gen = torch.Generator().manual_seed(seed)
    cfg = spec["config"]
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    w = random_weights(cfg, gen)
    # Round through the storage dtype: the file's values are the model's values.
    w = {k: v.to(spec["dtype"]).to(DT) for k, v in w.items()}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    stored = {}
    for k, v in w.items():
        key = k[len("transformer."):] if spec.get("hub_keys") and k.startswith("transformer.") else k
        stored[key] = v.to(spec["dtype"])
    if spec.get("hub_keys"):
        n = cfg["n_positions"]
        for i in range(cfg["n_layer"]):
            stored[f"h.{i}.attn.bias"] = torch.ones(n, n).tril().view(1, 1, n, n)
            stored[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    if spec.get("inv_freq"):
        h = cfg["hidden_size"] // cfg["num_attention_heads"]
        stored["model.layers.0.self_attn.rotary_emb.inv_freq"] = 1.0 / (
            10000.0 ** (torch.arange(0, h, 2, dtype=torch.float32) / h))
    names = list(stored)
    if spec["shards"] == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), stored, {"format": "pt"})
    else:
        n = spec["shards"]
        per = (len(names) + n - 1) // n
        weight_map, total = {}, 0
        for s in range(n):
            file = f"model-{s + 1:05d}-of-{n:05d}.safetensors"
            part = {k: stored[k] for k in names[s * per:(s + 1) * per]}
            write_safetensors(os.path.join(d, file), part, {"format": "pt"})
            for k, t in part.items():
                weight_map[k] = file
                total += t.numel() * t.element_size()
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    vocab = cfg["vocab_size"]
    ids, mask, labels = make_batch(vocab, gen)
    if cfg["model_type"] == "gpt2":
        logits = gpt2_logits(cfg, gpt2_weights(w), ids, mask)
    else:
        logits = llama_logits(cfg, w, ids, mask)
    loss = causal_lm_loss(logits, labels)
    write_safetensors(os.path.join(d, "expected.safetensors"), {
        "input_ids": ids, "attention_mask": mask, "labels": labels, "logits": logits,
        "loss": loss.reshape(())})
    write_safetensors(os.path.join(d, "params.safetensors"), shardtune_layout(cfg, w))


def generate(out):
    for i, (name, spec) in enumerate(sorted(CASES.items())):
        write_case(out, name, spec, 1000 + i)
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(sorted(CASES)) + "\n")
    print(f"hf_reference: wrote {len(CASES)} cases to {out}")


# ---- checks of ShardTune's exports ---------------------------------------------------------------

def load_batch(path):
    e = read_safetensors(path)
    return e["input_ids"], e["attention_mask"]


def compare(got, want, mask, what, rel=1e-5):
    real = mask.bool()
    err = (got.to(DT) - want)[real].abs().max().item()
    scale = want[real].abs().max().item()
    ok = err <= rel * scale + 1e-7
    print(f"{what}: max error {err:.3e} (scale {scale:.3e}) {'ok' if ok else 'MISMATCH'}")
    return ok


def check_hf(args):
    with open(os.path.join(args.dir, "config.json")) as f:
        cfg = json.load(f)
    ids, mask = load_batch(args.batch)
    want = logits_of(cfg, read_folder(args.dir), ids, mask)
    got = read_safetensors(args.logits)["logits"]
    return compare(got, want, mask, f"check-hf {args.dir}")


def apply_lora(cfg, raw, adapter, acfg):
    w = {k: v.to(DT) for k, v in raw.items()}
    r, alpha = acfg["r"], acfg["lora_alpha"]
    scale = alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r
    prefix = "base_model.model."
    modules = sorted({k[len(prefix):-len(".lora_A.weight")] for k in adapter if k.endswith(".lora_A.weight")})
    assert modules, "adapter holds no lora_A weights"
    for m in modules:
        a = adapter[prefix + m + ".lora_A.weight"].to(DT)
        b = adapter[prefix + m + ".lora_B.weight"].to(DT)
        assert a.shape[0] == r and b.shape[1] == r, (m, a.shape, b.shape)
        targets = acfg["target_modules"]
        assert any(m == t or m.endswith("." + t) for t in targets), (m, targets)
        key = m + ".weight"
        if cfg["model_type"] == "gpt2":
            key = key if key in w else key[len("transformer."):]
        delta = scale * (b @ a)
        w[key] = w[key] + (delta.t() if acfg.get("fan_in_fan_out") else delta)
    return w


def check_peft(args):
    with open(os.path.join(args.base, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(args.adapter, "adapter_config.json")) as f:
        acfg = json.load(f)
    adapter = read_safetensors(os.path.join(args.adapter, "adapter_model.safetensors"))
    raw = read_folder(args.base)
    ids, mask = load_batch(args.batch)
    if acfg["peft_type"] == "LORA":
        assert acfg["task_type"] == "CAUSAL_LM"
        want = logits_of(cfg, apply_lora(cfg, raw, adapter, acfg), ids, mask)
    elif acfg["peft_type"] == "PREFIX_TUNING":
        assert cfg["model_type"] != "gpt2"
        assert not acfg["prefix_projection"]
        emb = adapter["prompt_embeddings"].to(DT)
        p, heads, layers = acfg["num_virtual_tokens"], acfg["num_attention_heads"], acfg["num_layers"]
        assert emb.shape == (p, layers * 2 * acfg["token_dim"]), emb.shape
        kv = emb.view(1, p, layers * 2, heads, acfg["token_dim"] // heads).permute(2, 0, 3, 1, 4)
        b = ids.shape[0]
        prefix = [(kv[2 * l].expand(b, -1, -1, -1), kv[2 * l + 1].expand(b, -1, -1, -1))
                  for l in range(layers)]
        want = llama_logits(cfg, {k: v.to(DT) for k, v in raw.items()}, ids, mask, prefix=prefix,
                            position_offset=p)
    else:
        raise SystemExit(f"unknown peft_type {acfg['peft_type']}")
    got = read_safetensors(args.logits)["logits"]
    return compare(got, want, mask, f"check-peft {acfg['peft_type']} {args.adapter}")


# ---- the docs/hf.md walkthrough -----------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's byte -> printable character table (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


WALK_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("e", "r"),
               ("o", "n"), ("Ġ", "s")]
WALK_VOCAB = 320  # embedding rows: 256 bytes + 8 merges + <|endoftext|>, rounded up


def write_walk_tokenizer(d):
    """A byte-level BPE tokenizer.json as GPT-2/Llama 3/Qwen2 use (ByteLevel pre-tokenizer and
    decoder): byte b is id b, then the merges, then <|endoftext|> (BOS, EOS and pad)."""
    table = bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    for a, b in WALK_MERGES:
        vocab[a + b] = len(vocab)
    eot = len(vocab)
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": eot, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "vocab": vocab,
                  "merges": [a + " " + b for a, b in WALK_MERGES]},
    }
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>"}, f)


WALK_MODELS = {
    "llama": dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=WALK_VOCAB,
                  hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                  rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
                  bos_token_id=264, eos_token_id=264, torch_dtype="float32"),
    "qwen2": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=WALK_VOCAB,
                  hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6,
                  rope_theta=1000000.0, tie_word_embeddings=True, hidden_act="silu",
                  use_sliding_window=False, torch_dtype="bfloat16"),
    "gpt2": dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=WALK_VOCAB,
                 n_embd=32, n_head=4, n_layer=2, n_positions=128, n_inner=None,
                 layer_norm_epsilon=1e-5, activation_function="gelu_new", torch_dtype="float32"),
}

WALK_TEXT = [
    "the cat sat on the mat", "the dog ran in the sun", "a bird sang on the tree",
    "the sun is hot in the summer", "she reads the paper in the garden",
    "the rain falls on the street", "a boat sails on the sea", "the wind turns the mill",
    "he paints the door green", "the train is late again", "a fox hides in the snow",
    "the baker sells fresh bread", "the river runs to the sea", "a child plays in the park",
    "the moon shines at night", "the farmer feeds the hens",
]


def walkthrough(out):
    os.makedirs(out, exist_ok=True)
    for i, (name, cfg) in enumerate(sorted(WALK_MODELS.items())):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        gen = torch.Generator().manual_seed(2000 + i)
        w = random_weights(cfg, gen)
        # Milder weights than the reference cases (whose attention is sharp on purpose): the
        # walkthrough trains on them.
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg["torch_dtype"]]
        w = {k: (v * 0.5 if v.dim() == 2 else v).to(dtype) for k, v in w.items()}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        write_safetensors(os.path.join(d, "model.safetensors"), w, {"format": "pt"})
        write_walk_tokenizer(d)
    with open(os.path.join(out, "train.jsonl"), "w") as f:
        for t in WALK_TEXT:
            f.write(json.dumps({"text": t}) + "\n")
    # Held-out records as the tokenizer's byte ids (byte b is id b): no merges, so any byte-level
    # tokenizer reading needs no Python BPE here.
    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for t in ["the cat ran in the park", "a dog sat on the boat", "the sun sets on the sea",
                  "the hens sing at night"]:
            f.write(json.dumps({"input_ids": list(t.encode())}) + "\n")
    print(f"hf_reference: wrote the walkthrough models {sorted(WALK_MODELS)} and data to {out}")


def record_loss(cfg, raw, records, acfg=None, adapter=None):
    """Mean loss per target token over input_ids records, each record on its own (no padding)."""
    if acfg is not None and acfg["peft_type"] == "LORA":
        raw = apply_lora(cfg, raw, adapter, acfg)
    total, count = 0.0, 0
    for r in records:
        ids = torch.tensor([r["input_ids"]])
        labels = torch.tensor([r.get("labels", r["input_ids"])])
        mask = torch.ones_like(ids)
        if acfg is not None and acfg["peft_type"] == "PREFIX_TUNING":
            assert cfg["model_type"] != "gpt2"
            emb = adapter["prompt_embeddings"].to(DT)
            p, heads = acfg["num_virtual_tokens"], acfg["num_attention_heads"]
            layers = acfg["num_layers"]
            kv = emb.view(1, p, layers * 2, heads, acfg["token_dim"] // heads).permute(2, 0, 3, 1, 4)
            prefix = [(kv[2 * l], kv[2 * l + 1]) for l in range(layers)]
            logits = llama_logits(cfg, {k: v.to(DT) for k, v in raw.items()}, ids, mask,
                                  prefix=prefix, position_offset=p)
        else:
            logits = logits_of(cfg, raw, ids, mask)
        lp = torch.log_softmax(logits[0, :-1], dim=-1)
        target = labels[0, 1:]
        keep = target != -100
        total -= lp[keep].gather(1, target[keep].unsqueeze(1)).sum().item()
        count += int(keep.sum())
    return total / count


def loss_over_records(args):
    """One line per model: DIR or DIR,ADAPTER -> "<loss with 6 decimals> SPEC"."""
    with open(args.jsonl) as f:
        records = [json.loads(line) for line in f if line.strip()]
    for spec in args.models:
        d, _, adapter_dir = spec.partition(",")
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        acfg, adapter = None, None
        if adapter_dir:
            with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
                acfg = json.load(f)
            adapter = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
        print(f"{record_loss(cfg, read_folder(d), records, acfg, adapter):.6f} {spec}")
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    h = sub.add_parser("check-hf")
    h.add_argument("dir")
    h.add_argument("--batch", required=True, help="safetensors with input_ids and attention_mask")
    h.add_argument("--logits", required=True, help="safetensors with ShardTune's logits")
    p = sub.add_parser("check-peft")
    p.add_argument("--base", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--batch", required=True)
    p.add_argument("--logits", required=True)
    w = sub.add_parser("walkthrough")
    w.add_argument("out")
    lo = sub.add_parser("loss")
    lo.add_argument("models", nargs="+", help="DIR or DIR,ADAPTER_DIR")
    lo.add_argument("--jsonl", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "generate":
        generate(args.out)
        return 0
    if args.command == "walkthrough":
        walkthrough(args.out)
        return 0
    if args.command == "loss":
        return 0 if loss_over_records(args) else 1
    ok = check_hf(args) if args.command == "check-hf" else check_peft(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
