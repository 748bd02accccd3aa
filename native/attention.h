// attention.h: causal self-attention in blocks of query rows (attention.cpp).
#pragma once

#include <ATen/ATen.h>

namespace dtorch {

// BlockedCausalAttention is softmax(q kᵀ/√D + mask) v for q, k, v of
// [N,T,D] (N = batch × heads), mask the model's [P,P] additive causal mask
// (float32, P >= T), computed block query rows at a time; differentiable in
// q, k and v. It never holds more than one block's [N,block,T] scores.
at::Tensor BlockedCausalAttention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                                  const at::Tensor &mask, int64_t block);

}  // namespace dtorch
