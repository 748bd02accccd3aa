#!/usr/bin/python3
"""Independent PyTorch reference for HuggingFace GPT2LMHeadModel (test oracle for dtrain).

The math follows transformers' modeling_gpt2.py: learned position embeddings,
pre-LN blocks, Conv1D layers (y = x @ W + b, W stored [in, out]), fused c_attn
yielding q, k, v, scores / sqrt(head_dim), causal mask, softmax, c_proj, MLP
c_fc -> activation -> c_proj, final ln_f and an lm_head tied to wte.
Evaluation always runs in float64 with dropout off.

Checkpoints are HF-style directories (config.json + model.safetensors); the
safetensors file is written and parsed by hand (no safetensors package).
Token files are llm.c shards: 256 little-endian int32 header
([0]=20240520, [1]=1, [2]=count) followed by `count` uint16 tokens.

Subcommands:
  make    write a random checkpoint (optionally prefixed / 16-bit / with attn.bias)
  loss    mean next-token cross-entropy of a checkpoint over a token shard
  shard   write a random token shard
  logits  print the logits of one token sequence

Only stdlib + torch + numpy are used.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_INTS = 20240520, 1, 256
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
PREFIX = "transformer."

# --------------------------------------------------------------------------- safetensors


def save_safetensors(path, tensors):
    """Write an ordered {name: tensor} dict as a safetensors file (tensors stored back to back)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    names = {v: k for k, v in DTYPES.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the raw bits
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """Parse a safetensors file into {name: tensor} (F32/F16/BF16/F64; other dtypes are skipped)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base, out = 8 + n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf, shape, dt = data[base + b:base + e], info["shape"], info["dtype"]
        if dt == "BF16":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<i2").copy()).view(torch.bfloat16)
        elif dt in ("F32", "F16", "F64"):
            npdt = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dt]
            t = torch.from_numpy(np.frombuffer(buf, dtype=npdt).copy())
        else:
            print(f"note: skipping {name} with dtype {dt}", file=sys.stderr)
            continue
        out[name] = t.reshape(shape)
    return out


# --------------------------------------------------------------------------- model


def block_keys(i):
    p = f"h.{i}."
    return [p + k for k in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                            "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                            "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")]


def activation(name):
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "relu":
        return torch.relu
    raise ValueError(f"unsupported activation_function {name!r}")


class GPT2:
    """Functional float64 GPT-2 over a dict of HF-named weights (no prefix)."""

    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.L, self.H, self.E = cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.act = activation(cfg.get("activation_function", "gelu_new"))
        self.scale = cfg.get("scale_attn_weights", True)
        self.inv_layer = cfg.get("scale_attn_by_inverse_layer_idx", False)

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(x, (self.E,), self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def conv1d(self, x, name):
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def attn(self, x, i):
        B, T, E = x.shape
        hd = E // self.H
        q, k, v = self.conv1d(x, f"h.{i}.attn.c_attn").split(E, dim=2)
        q, k, v = (t.view(B, T, self.H, hd).transpose(1, 2) for t in (q, k, v))
        s = q @ k.transpose(-1, -2)
        if self.scale:
            s = s / math.sqrt(hd)
        if self.inv_layer:
            s = s / float(i + 1)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        s = s.masked_fill(~causal, float("-inf"))
        y = torch.softmax(s, dim=-1) @ v
        y = y.transpose(1, 2).reshape(B, T, E)
        return self.conv1d(y, f"h.{i}.attn.c_proj")

    def mlp(self, x, i):
        return self.conv1d(self.act(self.conv1d(x, f"h.{i}.mlp.c_fc")), f"h.{i}.mlp.c_proj")

    def __call__(self, idx):
        B, T = idx.shape
        if T > self.cfg["n_positions"]:
            raise ValueError(f"sequence length {T} > n_positions {self.cfg['n_positions']}")
        x = self.w["wte.weight"][idx] + self.w["wpe.weight"][torch.arange(T)]
        for i in range(self.L):
            x = x + self.attn(self.ln(x, f"h.{i}.ln_1"), i)
            x = x + self.mlp(self.ln(x, f"h.{i}.ln_2"), i)
        return self.ln(x, "ln_f") @ self.w["wte.weight"].T  # tied lm_head


def load_model(ckpt):
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    raw = load_safetensors(os.path.join(ckpt, "model.safetensors"))
    w = {}
    for k, t in raw.items():
        w[k[len(PREFIX):] if k.startswith(PREFIX) else k] = t.to(torch.float64)
    lm_head = w.pop("lm_head.weight", None)
    if lm_head is not None and not torch.equal(lm_head, w.get("wte.weight")):
        print("warning: lm_head.weight differs from wte.weight; using wte (tied)", file=sys.stderr)
    for i in range(cfg["n_layer"]):  # causal-mask buffers of old checkpoints are not weights
        w.pop(f"h.{i}.attn.bias", None)
        w.pop(f"h.{i}.attn.masked_bias", None)
    want = ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"]
    want += [k for i in range(cfg["n_layer"]) for k in block_keys(i)]
    missing, extra = sorted(set(want) - set(w)), sorted(set(w) - set(want))
    if missing or extra:
        raise ValueError(f"checkpoint mismatch: missing={missing} unexpected={extra}")
    return GPT2(cfg, w)


# --------------------------------------------------------------------------- shards


def write_shard(path, tokens):
    header = np.zeros(SHARD_HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, len(tokens))
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype="<u2").tobytes())


def read_shard(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(SHARD_HEADER_INTS * 4), dtype="<i4")
        if header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
            raise ValueError(f"{path}: bad shard header {header[:3].tolist()}")
        tokens = np.frombuffer(f.read(), dtype="<u2")
    if len(tokens) != header[2]:
        raise ValueError(f"{path}: header says {header[2]} tokens, file has {len(tokens)}")
    return tokens


# --------------------------------------------------------------------------- commands


def cmd_make(a):
    g = torch.Generator().manual_seed(a.seed)
    E, C, V, L = a.embd, a.ctx, a.vocab, a.layers
    if E % a.heads:
        raise SystemExit("--embd must be divisible by --heads")

    def n(*shape, std=a.std, mean=0.0):
        return mean + std * torch.randn(*shape, generator=g)

    w = {"wte.weight": n(V, E), "wpe.weight": n(C, E)}
    for i in range(L):
        p = f"h.{i}."
        w[p + "ln_1.weight"], w[p + "ln_1.bias"] = n(E, std=0.1, mean=1.0), n(E)
        if a.with_attn_bias:
            w[p + "attn.bias"] = torch.ones(C, C).tril().view(1, 1, C, C)
        w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = n(E, 3 * E), n(3 * E)
        w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = n(E, E), n(E)
        w[p + "ln_2.weight"], w[p + "ln_2.bias"] = n(E, std=0.1, mean=1.0), n(E)
        w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = n(E, 4 * E), n(4 * E)
        w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = n(4 * E, E), n(E)
    w["ln_f.weight"], w["ln_f.bias"] = n(E, std=0.1, mean=1.0), n(E)
    w = {k: t.to(DTYPES[a.dtype]) for k, t in w.items()}
    if a.prefix:
        w = {PREFIX + k: t for k, t in w.items()}
        w["lm_head.weight"] = w[PREFIX + "wte.weight"].clone()

    cfg = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "n_layer": L, "n_head": a.heads, "n_embd": E, "n_positions": C, "n_ctx": C,
        "vocab_size": V, "layer_norm_epsilon": 1e-5, "activation_function": a.activation,
        "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "initializer_range": 0.02,
        "n_inner": None, "bos_token_id": 50256, "eos_token_id": 50256, "tie_word_embeddings": True,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_safetensors(os.path.join(a.out, "model.safetensors"), w)
    print(json.dumps({"out": a.out, "tensors": len(w), "params": sum(t.numel() for t in w.values())}))


@torch.no_grad()
def cmd_loss(a):
    model = load_model(a.ckpt)
    tokens = read_shard(a.data)
    if a.max_tokens is not None:
        tokens = tokens[:a.max_tokens]
    T = a.seq_len
    nwin = max(0, (len(tokens) - 1) // T)
    if nwin == 0:
        raise SystemExit(f"need at least {T + 1} tokens, have {len(tokens)}")
    toks = torch.from_numpy(tokens.astype(np.int64))
    if int(toks.max()) >= model.cfg["vocab_size"]:
        raise SystemExit(f"token {int(toks.max())} >= vocab_size {model.cfg['vocab_size']}")
    total = 0.0
    for s in range(0, nwin, a.batch):
        win = torch.stack([toks[i * T:i * T + T + 1] for i in range(s, min(s + a.batch, nwin))])
        logits = model(win[:, :-1])
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), win[:, 1:].reshape(-1), reduction="sum").item()
    print(json.dumps({"loss": total / (nwin * T), "tokens": nwin * T, "windows": nwin}))


def cmd_shard(a):
    rng = np.random.default_rng(a.seed)
    write_shard(a.out, rng.integers(0, a.vocab, size=a.tokens, dtype=np.int64))
    print(json.dumps({"out": a.out, "tokens": a.tokens}))


@torch.no_grad()
def cmd_logits(a):
    model = load_model(a.ckpt)
    idx = torch.tensor([[int(t) for t in a.tokens.split(",") if t.strip()]], dtype=torch.int64)
    print(json.dumps({"logits": model(idx)[0].tolist()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("make", help="write a random HF-style GPT-2 checkpoint")
    m.add_argument("--out", required=True)
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--heads", type=int, default=2)
    m.add_argument("--embd", type=int, default=32)
    m.add_argument("--ctx", type=int, default=64)
    m.add_argument("--vocab", type=int, default=100)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--prefix", action="store_true", help="'transformer.' keys plus explicit lm_head.weight")
    m.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    m.add_argument("--with-attn-bias", action="store_true", help="add h.{i}.attn.bias causal-mask buffers")
    m.add_argument("--std", type=float, default=0.02,
                   help="std of weights/biases; raise (e.g. 0.3) to make activation differences visible")
    m.add_argument("--activation", default="gelu_new", choices=["gelu_new", "gelu", "gelu_pytorch_tanh", "relu"])
    m.set_defaults(fn=cmd_make)

    l = sub.add_parser("loss", help="mean cross-entropy over non-overlapping windows of a shard")
    l.add_argument("--ckpt", required=True)
    l.add_argument("--data", required=True)
    l.add_argument("--seq-len", type=int, required=True)
    l.add_argument("--max-tokens", type=int, default=None)
    l.add_argument("--batch", type=int, default=4, help="windows per forward pass (memory only)")
    l.set_defaults(fn=cmd_loss)

    s = sub.add_parser("shard", help="write a random llm.c token shard")
    s.add_argument("--out", required=True)
    s.add_argument("--tokens", type=int, required=True)
    s.add_argument("--vocab", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_shard)

    g = sub.add_parser("logits", help="print logits for one comma-separated token sequence")
    g.add_argument("--ckpt", required=True)
    g.add_argument("--tokens", required=True)
    g.set_defaults(fn=cmd_logits)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
