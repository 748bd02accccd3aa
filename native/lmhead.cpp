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
#include <cstdlib>
#include <limits>

#include "gpt2.h"

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

// SoftmaxRows turns logits [c,V] into probabilities in place and returns
// the per-row cross-entropy against targets (-1 rows give 0).
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

struct LMHead : public torch::autograd::Function<LMHead> {
  static at::Tensor forward(AutogradContext *ctx, at::Tensor hidden, at::Tensor w, at::Tensor targets,
                            at::Tensor probs, at::Tensor w_grad, int64_t count) {
    const int64_t n = hidden.size(0), rows = ChunkRows(w, n);
    at::Tensor hd = hidden.detach();
    at::Tensor total = at::zeros({}, hidden.options().dtype(at::kDouble));
    for (int64_t r = 0; r < n; r += rows) {
      const int64_t c = std::min(rows, n - r);
      at::Tensor chunk = probs.narrow(0, r, c);
      at::mm_out(chunk, hd.narrow(0, r, c), w.t());
      total.add_(SoftmaxRows(chunk, targets.narrow(0, r, c)).sum(at::kDouble));
    }
    ctx->save_for_backward({hd, w, targets, probs, w_grad});
    ctx->saved_data["count"] = count;
    return (total / double(count)).to(hidden.scalar_type());
  }

  static variable_list backward(AutogradContext *ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    at::Tensor hd = saved[0], w = saved[1], targets = saved[2], probs = saved[3], w_grad = saved[4];
    const double scale = grad_out[0].item<double>() / double(ctx->saved_data["count"].toInt());
    at::NoGradGuard no_grad;
    // dlogits = (softmax - onehot(target)) · scale, with ignored rows zeroed.
    at::Tensor valid = targets >= 0;
    probs.scatter_add_(1, targets.clamp_min(0).unsqueeze(1), valid.to(probs.scalar_type()).neg().unsqueeze(1));
    if (!valid.all().item<bool>()) probs.index_fill_(0, at::nonzero(~valid).squeeze(1), 0.0);
    at::Tensor dhidden = at::mm(probs, w).mul_(scale);
    w_grad.addmm_(probs.t(), hd, 1.0, scale);
    return {dhidden, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor LMHeadLoss(const at::Tensor &hidden, const at::Tensor &wte, const at::Tensor &targets,
                      at::Tensor &probs, const at::Tensor &wte_grad, int64_t count) {
  return LMHead::apply(hidden, wte, targets, probs, wte_grad, count);
}

double LMHeadLossSum(const at::Tensor &hidden, const at::Tensor &wte, const at::Tensor &targets) {
  at::NoGradGuard no_grad;
  // Float32 logits with a stable log-sum-exp agree with a float64 oracle to
  // ~1e-7 relative; sums accumulate in float64. One reused chunk buffer
  // (256 rows of GPT-2: 51 MB) keeps allocation out of the loop.
  const int64_t n = hidden.size(0), rows = std::min<int64_t>(256, n);
  at::Tensor logits = at::empty({rows, wte.size(0)}, hidden.options());
  double total = 0;
  for (int64_t r = 0; r < n; r += rows) {
    const int64_t c = std::min(rows, n - r);
    at::Tensor l = logits.narrow(0, 0, c);
    at::mm_out(l, hidden.narrow(0, r, c), wte.t());
    at::Tensor t = targets.narrow(0, r, c);
    at::Tensor picked = l.gather(1, t.clamp_min(0).unsqueeze(1)).squeeze(1);
    total += ((at::logsumexp(l, {1}) - picked) * (t >= 0)).sum(at::kDouble).item<double>();
  }
  return total;
}

}  // namespace dtorch
