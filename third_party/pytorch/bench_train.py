#!/usr/bin/python3
"""PyTorch-eager training baseline for `dtrain bench train`.

A nanoGPT-style GPT-2 (learned wpe, pre-LN blocks, tied lm_head, biases on,
dropout 0, GPT-2 init: N(0, 0.02), residual c_proj N(0, 0.02/sqrt(2*n_layer)))
trained on random token batches with AdamW, written the way a competent
PyTorch user would: F.scaled_dot_product_attention where torch has it (2.0+;
manual masked_fill + softmax on 1.13), tanh GELU, F.cross_entropy,
clip_grad_norm_(1.0), AdamW with weight decay 0.1 on 2-D weights only
(fused=True on CUDA where supported, else foreach=True),
zero_grad(set_to_none=True). --precision bf16 runs forward and loss under
torch.autocast(dtype=torch.bfloat16), float32 weights, as the usual recipe.

--threads also sets OMP/OPENBLAS/MKL_NUM_THREADS (unless already set) before torch
is imported. `--warmup` untimed steps are followed by `--steps` steps timed with
time.perf_counter; with --json one JSON line is printed.
Only stdlib + torch are used.
"""
import argparse
import inspect
import json
import math
import os
import statistics
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--embd", type=int, default=384)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", metavar="FILE",
                    help="write a chrome://tracing profile of the last step's forward and backward to FILE")
    return ap.parse_args()


BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
if __name__ == "__main__":
    # torch.set_num_threads does not reach a pthread OpenBLAS (Debian's torch uses one for
    # GEMMs), which sizes its pool from the environment when torch is imported.
    ARGS = parse_args()
    for var in BLAS_ENV:
        os.environ.setdefault(var, str(ARGS.threads))

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

SDPA = hasattr(F, "scaled_dot_product_attention")


class Block(nn.Module):
    def __init__(self, E, H, C):
        super().__init__()
        self.H = H
        self.ln_1, self.ln_2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.c_attn, self.attn_proj = nn.Linear(E, 3 * E), nn.Linear(E, E)
        self.c_fc, self.mlp_proj = nn.Linear(E, 4 * E), nn.Linear(4 * E, E)
        self.register_buffer("mask", torch.ones(C, C, dtype=torch.bool).tril().view(1, 1, C, C), persistent=False)

    def attn(self, x):
        B, T, E = x.shape
        q, k, v = self.c_attn(x).split(E, dim=2)
        q, k, v = (t.view(B, T, self.H, E // self.H).transpose(1, 2) for t in (q, k, v))
        if SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, E))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, E))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, H, E, C, V):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, E), nn.Embedding(C, E)
        self.h = nn.ModuleList(Block(E, H, C) for _ in range(L))
        self.ln_f = nn.LayerNorm(E)
        self.lm_head = nn.Linear(E, V, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for name, p in self.named_parameters():
            if name.endswith("_proj.weight"):  # residual projections
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias") and "ln_" not in name:
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def make_optimizer(model, device, lr=3e-4, wd=0.1):
    params = [p for p in model.parameters() if p.requires_grad]  # tied weight appears once
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    sig = inspect.signature(torch.optim.AdamW).parameters
    if device.type == "cuda" and "fused" in sig:
        kw, kind = {"fused": True}, "fused"
    elif "foreach" in sig:
        kw, kind = {"foreach": True}, "foreach"  # 1.13 defaults to the per-tensor loop on CPU
    else:
        kw, kind = {}, "loop"
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, **kw), kind


def main():
    a = ARGS
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    model = GPT(a.layers, a.heads, a.embd, a.ctx, a.vocab).to(device)
    model.train()
    opt, opt_kind = make_optimizer(model, device)
    nparams = sum(p.numel() for p in model.parameters())
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if a.precision == "bf16"
                else contextlib.nullcontext())

    g = torch.Generator().manual_seed(a.seed)
    data = torch.randint(0, a.vocab, (a.warmup + a.steps, a.batch, a.ctx + 1), generator=g)
    xs, ys = data[:, :, :-1].contiguous().to(device), data[:, :, 1:].contiguous().to(device)

    losses, times = [], []
    for i in range(a.warmup + a.steps):
        x, y = xs[i], ys[i]
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        profiling = a.profile and i == a.warmup + a.steps - 1
        prof = torch.autograd.profiler.profile() if profiling else contextlib.nullcontext()
        with prof:
            with autocast:
                loss = model(x, y)
            loss.backward()
        if profiling:
            prof.export_chrome_trace(a.profile)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)
        lv = loss.item()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
        losses.append(lv)
        if not a.json:
            print(f"step {i:3d}{' (warmup)' if i < a.warmup else ''}: loss {lv:.4f}  {dt * 1000:.1f} ms")

    tokens = a.batch * a.ctx * len(times)
    out = {"impl": "pytorch-eager", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "blas_env": {v: os.environ.get(v) for v in BLAS_ENV},
           "device": str(device), "precision": a.precision, "attention": "sdpa" if SDPA else "manual",
           "optimizer": opt_kind, "tokens_per_s": tokens / sum(times) if times else None,
           "step_s_median": statistics.median(times) if times else None, "step_s": times,
           "loss_first": losses[0], "loss_last": losses[-1], "params": nparams,
           "peak_rss_bytes": vm_hwm()}
    print(json.dumps(out) if a.json else json.dumps(out, indent=2))


def vm_hwm():
    """This process's resident high-water mark (VmHWM), 0 where /proc has none.
    Not ru_maxrss: after exec that starts from the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    main()
