// attention.cpp: causal self-attention in blocks of query rows, without the
// [N,T,T] score tensors that the plain form keeps for backward.
//
// For the query rows [i0, i1) only the keys [0, i1) can be attended to, so
// each block multiplies against that prefix: at T = 1024 in blocks of 256,
// 62.5% of the plain form's score entries. Forward keeps nothing but its
// inputs; backward computes each block's scores and probabilities again,
// with the very ops forward ran (so the same bits), then
//   dV += Pᵀ dO,  dP = dO Vᵀ,  dS = P ∘ (dP − rowsum(P ∘ dP)),
//   dQ = scale · dS K,  dK += scale · dSᵀ Q,
// dK and dV accumulated over blocks in float32. As in the plain form, the
// scores come out of the GEMM in the compute dtype and the softmax runs in
// float32.
#include "attention.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

namespace dtorch {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// BlockProbs are the float32 softmax probabilities of the query rows
// [i0, i0+n) over the keys [0, i0+n).
at::Tensor BlockProbs(const at::Tensor &q, const at::Tensor &k, const at::Tensor &mask, int64_t i0, int64_t n,
                      double scale) {
  const int64_t keys = i0 + n;
  const at::Tensor m = mask.narrow(0, i0, n).narrow(1, 0, keys).to(q.scalar_type());
  const at::Tensor s = at::baddbmm(m, q.narrow(1, i0, n), k.narrow(1, 0, keys).transpose(1, 2), 1.0, scale);
  return at::softmax(s, -1, at::kFloat);
}

struct BlockedCausal : public torch::autograd::Function<BlockedCausal> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                            const at::Tensor &mask, int64_t block) {
    ctx->save_for_backward({q, k, v, mask});
    ctx->saved_data["block"] = block;
    const int64_t T = q.size(1);
    const double scale = 1.0 / std::sqrt(double(q.size(2)));
    at::Tensor y = at::empty_like(q);
    for (int64_t i0 = 0; i0 < T; i0 += block) {
      const int64_t n = std::min(block, T - i0);
      const at::Tensor p = BlockProbs(q, k, mask, i0, n, scale);
      y.narrow(1, i0, n).copy_(at::bmm(p.to(q.scalar_type()), v.narrow(1, 0, i0 + n)));
    }
    return y;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &mask = saved[3];
    const int64_t block = ctx->saved_data["block"].toInt();
    const at::Tensor dy = grads[0].contiguous();
    const at::ScalarType dt = q.scalar_type();
    const int64_t T = q.size(1);
    const double scale = 1.0 / std::sqrt(double(q.size(2)));
    at::Tensor dq = at::empty_like(q);
    at::Tensor dk = at::zeros(k.sizes(), k.options().dtype(at::kFloat));
    at::Tensor dv = at::zeros(v.sizes(), v.options().dtype(at::kFloat));
    for (int64_t i0 = 0; i0 < T; i0 += block) {
      const int64_t n = std::min(block, T - i0), keys = i0 + n;
      const at::Tensor p = BlockProbs(q, k, mask, i0, n, scale);  // [N,n,keys] float32
      const at::Tensor dyb = dy.narrow(1, i0, n), qb = q.narrow(1, i0, n);
      const at::Tensor kp = k.narrow(1, 0, keys), vp = v.narrow(1, 0, keys);
      dv.narrow(1, 0, keys).add_(at::bmm(p.to(dt).transpose(1, 2), dyb));
      const at::Tensor dp = at::bmm(dyb, vp.transpose(1, 2)).to(at::kFloat);
      // dS = P ∘ (dP − rowsum(P ∘ dP)): the softmax's own backward kernel.
      const at::Tensor ds = at::_softmax_backward_data(dp, p, -1, at::kFloat).to(dt);
      dq.narrow(1, i0, n).copy_(at::bmm(ds, kp).mul_(scale));
      dk.narrow(1, 0, keys).add_(at::bmm(ds.transpose(1, 2), qb), scale);
    }
    return {dq, dk.to(dt), dv.to(dt), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor BlockedCausalAttention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                                  const at::Tensor &mask, int64_t block) {
  TORCH_CHECK(block >= 1, "attention block must be >= 1");
  return BlockedCausal::apply(q, k, v, mask, block);
}

}  // namespace dtorch
