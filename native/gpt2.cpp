// gpt2.cpp: GPT-2 as HF's GPT2LMHeadModel computes it, read top to bottom in
// the order of the forward pass. Shapes: B batch, T sequence, E n_embd,
// H heads, D = E/H head size, I MLP width, V vocabulary, P positions.
#include "gpt2.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "attention.h"
#include "kernels.h"

namespace dtorch {

void CheckConfig(const dt_config &c) {
  auto bad = [](const std::string &what) { throw std::invalid_argument("config: " + what); };
  if (c.n_layer < 1) bad("n_layer must be >= 1");
  if (c.n_head < 1) bad("n_head must be >= 1");
  if (c.n_embd < 1 || c.n_embd % c.n_head != 0) bad("n_embd must be a positive multiple of n_head");
  if (c.n_positions < 1) bad("n_positions must be >= 1");
  if (c.vocab_size < 1) bad("vocab_size must be >= 1");
  if (c.n_inner < 0) bad("n_inner must be >= 0");
  if (!(c.layer_norm_epsilon > 0)) bad("layer_norm_epsilon must be > 0");
  for (double p : {c.embd_pdrop, c.attn_pdrop, c.resid_pdrop})
    if (!(p >= 0 && p < 1)) bad("dropout must be in [0, 1)");
  if (!(c.initializer_range >= 0)) bad("initializer_range must be >= 0");
}

std::vector<ParamSpec> Layout(const dt_config &c) {
  const int64_t E = c.n_embd, I = c.n_inner > 0 ? c.n_inner : 4 * c.n_embd;
  std::vector<ParamSpec> specs;
  int64_t off = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    specs.push_back({std::move(name), std::move(shape), off, n});
    off += n;
  };
  add("wte.weight", {c.vocab_size, E});
  add("wpe.weight", {c.n_positions, E});
  for (int64_t i = 0; i < c.n_layer; i++) {
    const std::string p = "h." + std::to_string(i) + ".";
    add(p + "ln_1.weight", {E});
    add(p + "ln_1.bias", {E});
    add(p + "attn.c_attn.weight", {E, 3 * E});
    add(p + "attn.c_attn.bias", {3 * E});
    add(p + "attn.c_proj.weight", {E, E});
    add(p + "attn.c_proj.bias", {E});
    add(p + "ln_2.weight", {E});
    add(p + "ln_2.bias", {E});
    add(p + "mlp.c_fc.weight", {E, I});
    add(p + "mlp.c_fc.bias", {I});
    add(p + "mlp.c_proj.weight", {I, E});
    add(p + "mlp.c_proj.bias", {E});
  }
  add("ln_f.weight", {E});
  add("ln_f.bias", {E});
  return specs;
}

static bool EndsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

GPT2::GPT2(const dt_config &c, at::Device dev, uint64_t seed)
    : cfg(c), device(dev), specs(Layout(c)), gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  CheckConfig(c);
  const int64_t numel = specs.back().offset + specs.back().numel;
  at::Tensor cpu = at::empty({numel}, at::kFloat);
  InitWeights(cpu, seed);
  flat = cpu.to(device);
  flat_grad = at::zeros({numel}, flat.options());
  if (!device.is_cpu()) {
    // Dropout masks are drawn on the device, so the generator must live there.
    gen_ = at::globalContext().defaultGenerator(device);
    gen_.set_current_seed(seed);
  }
  causal_ = at::full({c.n_positions, c.n_positions}, -std::numeric_limits<float>::infinity(), flat.options()).triu(1);
  BindViews();
}

// GradNorm on the CPU sums fixed chunks in parallel and the chunks' sums in
// order, so no thread count changes it. at::norm's float32 reduction sums in
// an order that depends on the ISA libtorch dispatches to (10M values: AVX2
// and AVX-512 norms 2.4e-4 apart), so the clip it decides would differ
// between miners.
double GPT2::GradNorm() const {
  at::NoGradGuard no_grad;
  if (!flat_grad.device().is_cpu()) return flat_grad.norm().item<double>();
  constexpr int64_t kChunk = 1 << 16;
  const int64_t n = flat_grad.numel(), chunks = (n + kChunk - 1) / kChunk;
  const float *g = flat_grad.data_ptr<float>();
  std::vector<double> part(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; c++) part[c] = SumSquares(g + c * kChunk, std::min(kChunk, n - c * kChunk));
  });
  double total = 0;
  for (double p : part) total += p;
  return std::sqrt(total);
}

void GPT2::SeedDropout(uint64_t seed) {
  std::lock_guard<std::mutex> lock(gen_.mutex());
  gen_.set_current_seed(seed);
}

void GPT2::SetCompute(at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16)
    throw std::invalid_argument(std::string("precision: want float32 or bfloat16, not ") + c10::toString(dtype));
  compute_ = dtype;
}

// Staging is the first n floats of the pinned host buffer. A pageable host
// buffer makes the driver stage through its own small pinned buffers, chunk
// by chunk; one pinned buffer of the whole size takes a single DMA at full
// PCIe rate, then a host memcpy.
at::Tensor GPT2::Staging(int64_t n) {
  if (!staging_.defined())
    staging_ = at::empty({flat.numel()}, at::TensorOptions().dtype(at::kFloat).pinned_memory(true));
  return staging_.narrow(0, 0, n);
}

void GPT2::CopyToHost(const at::Tensor &src, float *dst) {
  at::Tensor out = at::from_blob(dst, {src.numel()}, at::kFloat);
  if (src.device().is_cpu()) {
    out.copy_(src);
    return;
  }
  at::Tensor st = Staging(src.numel());
  st.copy_(src);
  out.copy_(st);
}

void GPT2::CopyFromHost(const float *src, const at::Tensor &dst) {
  at::Tensor in = at::from_blob(const_cast<float *>(src), {dst.numel()}, at::kFloat);
  at::NoGradGuard no_grad;
  if (dst.device().is_cpu()) {
    dst.copy_(in);
    return;
  }
  at::Tensor st = Staging(dst.numel());
  st.copy_(in);
  dst.copy_(st);
}

// InitWeights follows GPT-2 (and HF's _init_weights): normal(0, 0.02) for
// weights and embeddings, zero biases, unit LayerNorm, and residual
// projections scaled by 1/sqrt(2·n_layer) (GPT-2 paper, section 2.3).
void GPT2::InitWeights(at::Tensor cpu_flat, uint64_t seed) const {
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = cfg.initializer_range;
  for (const auto &s : specs) {
    at::Tensor t = cpu_flat.narrow(0, s.offset, s.numel);
    if (EndsWith(s.name, "ln_1.weight") || EndsWith(s.name, "ln_2.weight") || s.name == "ln_f.weight") {
      t.fill_(1.0);
    } else if (s.shape.size() == 1) {
      t.zero_();
    } else if (EndsWith(s.name, "c_proj.weight")) {
      t.normal_(0.0, std / std::sqrt(2.0 * cfg.n_layer), gen);
    } else {
      t.normal_(0.0, std, gen);
    }
  }
}

void GPT2::BindViews() {
  params.clear();
  for (const auto &s : specs) {
    at::Tensor p = flat.narrow(0, s.offset, s.numel).view(s.shape);
    at::Tensor g = flat_grad.narrow(0, s.offset, s.numel).view(s.shape);
    params.push_back(p);
    if (s.name == "wte.weight") {
      wte = p, wte_grad = g;
    } else if (s.name == "wpe.weight") {
      wpe = p, wpe_grad = g;
    } else {
      // Autograd accumulates in place into an existing .grad, so every
      // gradient lands in flat_grad without a copy.
      p.requires_grad_(true);
      p.mutable_grad() = g;
    }
  }
  size_t k = 2;
  h.resize(cfg.n_layer);
  for (auto &b : h) {
    b.ln1_w = params[k++], b.ln1_b = params[k++];
    b.attn_w = params[k++], b.attn_b = params[k++];
    b.attn_proj_w = params[k++], b.attn_proj_b = params[k++];
    b.ln2_w = params[k++], b.ln2_b = params[k++];
    b.fc_w = params[k++], b.fc_b = params[k++];
    b.proj_w = params[k++], b.proj_b = params[k++];
  }
  lnf_w = params[k++], lnf_b = params[k++];
}

at::Tensor GPT2::Dropout(const at::Tensor &x, double p, bool train) {
  if (!train || p == 0) return x;
  at::Tensor keep = at::empty_like(x, x.options().requires_grad(false)).bernoulli_(1 - p, gen_);
  return x * keep.mul_(1.0 / (1 - p));
}

at::Tensor GPT2::Embed(const at::Tensor &x) const {
  at::NoGradGuard no_grad;
  const int64_t T = x.size(1);
  return wte.index_select(0, x.reshape(-1)).view({x.size(0), T, cfg.n_embd}) + wpe.narrow(0, 0, T);
}

at::Tensor GPT2::Attention(const at::Tensor &x, const Block &b, bool train) {
  const int64_t B = x.size(0), T = x.size(1), E = cfg.n_embd, H = cfg.n_head, D = E / H;
  // qkv [B*T,3E] -> [3,B,H,T,D], one copy so q, k, v are contiguous
  at::Tensor qkv = at::addmm(Low(b.attn_b), Low(x.reshape({B * T, E})), Low(b.attn_w))
                       .view({B, T, 3, H, D})
                       .permute({2, 0, 3, 1, 4})
                       .contiguous();
  const std::vector<at::Tensor> q4 = qkv.unbind(0);  // one backward node, not three selects
  at::Tensor y;  // [B,H,T,D]
#if TORCH_VERSION_MAJOR >= 2
  if (!(train && cfg.attn_pdrop > 0)) {
    y = at::scaled_dot_product_attention(q4[0], q4[1], q4[2], {}, 0.0, /*is_causal=*/true);
  }
#endif
  // In blocks when there are several: a sequence of one block would only
  // pay backward's second pass over the scores, with nothing saved.
  if (!y.defined() && attn_block_ > 0 && T > attn_block_ && !(train && cfg.attn_pdrop > 0)) {
    y = BlockedCausalAttention(q4[0].view({B * H, T, D}), q4[1].view({B * H, T, D}), q4[2].view({B * H, T, D}),
                               causal_, attn_block_)
            .view({B, H, T, D});
  }
  if (!y.defined()) {
    at::Tensor q = q4[0].view({B * H, T, D}), k = q4[1].view({B * H, T, D}), v = q4[2].view({B * H, T, D});
    // att [B*H,T,T] = softmax(q k^T / sqrt(D) + mask), the mask being -inf
    // above the diagonal; scale and mask ride along in one baddbmm.
    at::Tensor att = at::baddbmm(Low(causal_.narrow(0, 0, T).narrow(1, 0, T)), q, k.transpose(1, 2), 1.0,
                                 1.0 / std::sqrt(double(D)));
    // The softmax runs in float32 whatever the compute dtype, as autocast's.
    att = Dropout(at::softmax(att, -1, at::kFloat), cfg.attn_pdrop, train);
    y = at::bmm(Low(att), v).view({B, H, T, D});
  }
  y = y.transpose(1, 2).reshape({B * T, E});
  y = at::addmm(Low(b.attn_proj_b), y, Low(b.attn_proj_w));
  return Dropout(y, cfg.resid_pdrop, train).view({B, T, E});
}

at::Tensor GPT2::Mlp(const at::Tensor &x, const Block &b, bool train) {
  const int64_t B = x.size(0), T = x.size(1), E = cfg.n_embd;
  at::Tensor m = at::addmm(Low(b.fc_b), Low(x.reshape({B * T, E})), Low(b.fc_w));  // [B*T,I]
  m = at::gelu(m, cfg.gelu_tanh ? "tanh" : "none");
  m = at::addmm(Low(b.proj_b), m, Low(b.proj_w));  // [B*T,E]
  return Dropout(m, cfg.resid_pdrop, train).view({B, T, E});
}

at::Tensor GPT2::Body(at::Tensor x, bool train) {
  const int64_t E = cfg.n_embd;
  const double eps = cfg.layer_norm_epsilon;
  x = Dropout(x, cfg.embd_pdrop, train);
  // The residual stream and the LayerNorms stay float32; the sublayers'
  // outputs arrive in the compute dtype and are promoted by the sums.
  for (const auto &b : h) {
    x = x + Attention(at::layer_norm(x, {E}, b.ln1_w, b.ln1_b, eps), b, train);
    x = x + Mlp(at::layer_norm(x, {E}, b.ln2_w, b.ln2_b, eps), b, train);
  }
  return at::layer_norm(x, {E}, lnf_w, lnf_b, eps);
}

static void CheckTokens(const at::Tensor &x, int64_t vocab, int64_t positions, const char *what,
                        bool allow_ignore) {
  if (x.size(1) > positions)
    throw std::invalid_argument("sequence length " + std::to_string(x.size(1)) +
                                " exceeds n_positions " + std::to_string(positions));
  if (x.numel() == 0) return;
  const int64_t lo = x.min().item<int64_t>(), hi = x.max().item<int64_t>();
  if (hi >= vocab || lo < (allow_ignore ? -1 : 0))
    throw std::invalid_argument(std::string(what) + " token out of range [0, " + std::to_string(vocab) +
                                "): saw " + std::to_string(lo < 0 ? lo : hi));
}

double GPT2::TrainStep(const at::Tensor &x, const at::Tensor &y, double scale, int64_t *count) {
  CheckTokens(x, cfg.vocab_size, cfg.n_positions, "input", false);
  CheckTokens(y, cfg.vocab_size, cfg.n_positions, "target", true);
  const int64_t B = x.size(0), T = x.size(1), E = cfg.n_embd;
  // Counted on the host tensor: an .item() on the device would make the
  // CPU wait for the GPU before it queues the forward pass.
  *count = (y >= 0).sum().item<int64_t>();
  if (*count == 0) return 0.0;
  at::Tensor xd = x.to(device, at::kLong), yd = y.to(device, at::kLong).reshape(-1);
  // The embedding output is a leaf: its gradient is scattered into wte and
  // wpe by hand below, which avoids a dense [V,E] temporary per step.
  at::Tensor emb = Embed(xd).requires_grad_(true);
  at::Tensor hidden = Body(emb, true).reshape({B * T, E});
  if (!probs_.defined() || probs_.size(0) < B * T) probs_ = at::empty({B * T, cfg.vocab_size}, flat.options());
  at::Tensor probs = probs_.narrow(0, 0, B * T);
  at::Tensor loss = LMHeadLoss(hidden, wte.detach(), yd, probs, wte_grad, *count, scale, compute_);
  loss.backward(at::full({}, scale, loss.options()));
  {
    at::NoGradGuard no_grad;
    at::Tensor g = emb.grad();
    wte_grad.index_add_(0, xd.reshape(-1), g.reshape({B * T, E}));
    wpe_grad.narrow(0, 0, T).add_(g.sum(0));
  }
  // Read after backward is queued, the step's one wait for the device.
  return loss.item<double>();
}

double GPT2::EvalSum(const at::Tensor &x, const at::Tensor &y, int64_t *count) {
  CheckTokens(x, cfg.vocab_size, cfg.n_positions, "input", false);
  CheckTokens(y, cfg.vocab_size, cfg.n_positions, "target", true);
  at::NoGradGuard no_grad;
  const int64_t B = x.size(0), T = x.size(1), E = cfg.n_embd;
  *count = (y >= 0).sum().item<int64_t>();
  if (*count == 0) return 0.0;
  at::Tensor xd = x.to(device, at::kLong), yd = y.to(device, at::kLong).reshape(-1);
  at::Tensor hidden = Body(Embed(xd), false).reshape({B * T, E});
  return LMHeadLossSum(hidden, wte, yd, compute_);
}

at::Tensor GPT2::Logits(const at::Tensor &x, bool last_only) {
  CheckTokens(x, cfg.vocab_size, cfg.n_positions, "input", false);
  at::NoGradGuard no_grad;
  at::Tensor hidden = Body(Embed(x.to(device, at::kLong)), false);  // [B,T,E]
  if (last_only) hidden = hidden.select(1, hidden.size(1) - 1);    // [B,E]
  return at::matmul(hidden, wte.t());
}

}  // namespace dtorch
