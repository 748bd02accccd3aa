// lmhead.cpp: the tied LM head and cross-entropy, fused.
//
// The logits [N,V] are the largest tensor of a GPT-2 step (N = B·T rows of a
// 50257-wide vocabulary). Eager PyTorch writes them, reads them for
// log_softmax, writes the log-probabilities, and in backward allocates and
// walks [N,V] tensors twice more. Here the logits are computed a few rows at
// a time into one reused buffer and turned into probabilities while the rows
// are still in cache; backward subtracts the one-hot targets in place and
// runs two GEMMs: dhidden = dlogits·W, and dW += dlogitsᵀ·hidden straight into
// the flat gradient.
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "gpt2.h"
#include "kernels.h"

namespace dtorch {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per chunk on CPU: the softmax passes run while a chunk is still in
// the last-level cache, and the GEMM stays large enough to run at full rate
// (measured on a 2-core Xeon: 64 rows 950 tokens/s, 2048 rows 1079).
// GPUs take everything at once.
int64_t ChunkRows(const at::Tensor &w, int64_t n) {
  if (!w.device().is_cpu()) return n;
  static const int64_t rows = [] {
    const char *s = std::getenv("DTRAIN_LMHEAD_ROWS");
    const int64_t v = s ? std::atoll(s) : 0;
    return v > 0 ? v : int64_t(2048);
  }();
  return rows;
}

// On CPU the softmax is one fused kernel per row (kernels.cpp): the at::
// ops make a pass over all of [c,V] per op, and at::logsumexp alone took
// longer than the GEMM that produced its input. Measured on 256 GPT-2 rows,
// 2 threads of a Sapphire Rapids: at::logsumexp 34 ms, the kernel without
// writing probabilities 4.8 ms; max/sub/exp/sum/div 17 ms, the kernel 6 ms.
bool FusedRows(const at::Tensor &logits) {
  return logits.device().is_cpu() && logits.scalar_type() == at::kFloat && logits.is_contiguous();
}

// CrossEntropyRows is the CPU kernel: the summed cross-entropy of logits
// [c,V] against targets (-1 rows give 0), three passes per row while the
// row (200 KB for GPT-2) stays in L2: max, exp and sum, scale. With
// keep_probs the logits become probabilities in place; without, they are
// only read. Rows run in parallel; the per-row losses are summed in row
// order so the total does not depend on the thread count.
double CrossEntropyRows(at::Tensor logits, const at::Tensor &targets, bool keep_probs) {
  const int64_t c = logits.size(0), v = logits.size(1);
  float *base = logits.data_ptr<float>();
  at::Tensor tc = targets.to(at::kLong).contiguous();
  const int64_t *tgt = tc.data_ptr<int64_t>();
  std::vector<double> loss(c);
  at::parallel_for(0, c, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      float *x = base + r * v;
      const float mx = RowMax(x, v);
      const float picked = tgt[r] >= 0 ? x[tgt[r]] : 0.0f;
      const double sum = keep_probs ? SumExpInPlace(x, v, mx) : SumExpOnly(x, v, mx);
      if (keep_probs) ScaleRow(x, v, float(1.0 / sum));
      // log-sum-exp - logit[target]
      loss[r] = tgt[r] >= 0 ? std::log(sum) + double(mx) - double(picked) : 0.0;
    }
  });
  double total = 0;
  for (double l : loss) total += l;
  return total;
}

// SoftmaxRows turns logits [c,V] into probabilities in place and returns
// the per-row cross-entropy against targets (-1 rows give 0). Devices other
// than the CPU (and dtypes other than float32) take this path.
at::Tensor SoftmaxRows(at::Tensor logits, const at::Tensor &targets) {
  at::Tensor valid = targets >= 0;
  at::Tensor picked = logits.gather(1, targets.clamp_min(0).unsqueeze(1)).squeeze(1);
  at::Tensor mx = std::get<0>(logits.max(1, /*keepdim=*/true));
  logits.sub_(mx).exp_();
  at::Tensor sum = logits.sum(1, /*keepdim=*/true);
  logits.div_(sum);
  // log-sum-exp - logit[target]
  return (sum.log_().add_(mx).squeeze(1) - picked).mul_(valid);
}

// LowMM is a·bᵀ written into out (float32): straight into out when a and
// b are float32, else through a temporary in their dtype (bf16 GEMMs
// accumulate in float32 inside and round their output once).
void LowMM(at::Tensor out, const at::Tensor &a, const at::Tensor &b) {
  if (a.scalar_type() == out.scalar_type())
    at::mm_out(out, a, b.t());
  else
    out.copy_(at::mm(a, b.t()));
}

struct LMHead : public torch::autograd::Function<LMHead> {
  static at::Tensor forward(AutogradContext *ctx, at::Tensor hidden, at::Tensor w, at::Tensor targets,
                            at::Tensor probs, at::Tensor w_grad, int64_t count, double scale, int64_t compute) {
    const int64_t n = hidden.size(0), rows = ChunkRows(w, n);
    const auto dtype = static_cast<at::ScalarType>(compute);
    at::Tensor hd = hidden.detach().to(dtype), wl = w.to(dtype);
    at::Tensor total = at::zeros({}, hidden.options().dtype(at::kDouble));
    for (int64_t r = 0; r < n; r += rows) {
      const int64_t c = std::min(rows, n - r);
      at::Tensor chunk = probs.narrow(0, r, c);
      LowMM(chunk, hd.narrow(0, r, c), wl);
      if (FusedRows(chunk))
        total.add_(CrossEntropyRows(chunk, targets.narrow(0, r, c), /*keep_probs=*/true));
      else
        total.add_(SoftmaxRows(chunk, targets.narrow(0, r, c)).sum(at::kDouble));
    }
    ctx->save_for_backward({hd, wl, targets, probs, w_grad});
    ctx->saved_data["count"] = count;
    ctx->saved_data["scale"] = scale;
    return (total / double(count)).to(hidden.scalar_type());
  }

  static variable_list backward(AutogradContext *ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    at::Tensor hd = saved[0], w = saved[1], targets = saved[2], probs = saved[3], w_grad = saved[4];
    // grad_out[0] is the scale given to forward; reading it back here would
    // stall the CPU until the GPU has finished the forward pass.
    const int64_t count = ctx->saved_data["count"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble() / double(count);
    at::NoGradGuard no_grad;
    // dlogits = (softmax - onehot(target)) · scale, with ignored rows zeroed.
    at::Tensor valid = targets >= 0;
    probs.scatter_add_(1, targets.clamp_min(0).unsqueeze(1), valid.to(probs.scalar_type()).neg().unsqueeze(1));
    if (count < targets.numel()) probs.index_fill_(0, at::nonzero(~valid).squeeze(1), 0.0);
    // Both GEMMs run in the compute dtype (dl is probs itself in float32);
    // the results come back in float32: hidden's gradient, and wte's master
    // gradient, accumulated in place when the dtypes allow it.
    at::Tensor dl = probs.to(w.scalar_type());
    at::Tensor dhidden = at::mm(dl, w).to(probs.scalar_type()).mul_(scale);
    if (dl.scalar_type() == w_grad.scalar_type())
      w_grad.addmm_(dl.t(), hd, 1.0, scale);
    else
      w_grad.add_(at::mm(dl.t(), hd), scale);
    return {dhidden, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor LMHeadLoss(const at::Tensor &hidden, const at::Tensor &wte, const at::Tensor &targets,
                      at::Tensor &probs, const at::Tensor &wte_grad, int64_t count, double scale,
                      at::ScalarType compute) {
  return LMHead::apply(hidden, wte, targets, probs, wte_grad, count, scale, int64_t(compute));
}

double LMHeadLossSum(const at::Tensor &hidden, const at::Tensor &wte, const at::Tensor &targets,
                     at::ScalarType compute) {
  at::NoGradGuard no_grad;
  // Float32 logits with a stable log-sum-exp agree with a float64 oracle to
  // ~1e-7 relative; sums accumulate in float64. One reused chunk buffer
  // (256 rows of GPT-2: 51 MB) keeps allocation out of the loop.
  const int64_t n = hidden.size(0), rows = std::min<int64_t>(256, n);
  at::Tensor logits = at::empty({rows, wte.size(0)}, hidden.options());
  const at::Tensor hl = hidden.to(compute), wl = wte.to(compute);
  double total = 0;
  for (int64_t r = 0; r < n; r += rows) {
    const int64_t c = std::min(rows, n - r);
    at::Tensor l = logits.narrow(0, 0, c);
    LowMM(l, hl.narrow(0, r, c), wl);
    at::Tensor t = targets.narrow(0, r, c);
    if (FusedRows(l)) {
      total += CrossEntropyRows(l, t, /*keep_probs=*/false);
      continue;
    }
    at::Tensor picked = l.gather(1, t.clamp_min(0).unsqueeze(1)).squeeze(1);
    total += ((at::logsumexp(l, {1}) - picked) * (t >= 0)).sum(at::kDouble).item<double>();
  }
  return total;
}

}  // namespace dtorch
