// gpt2.h: GPT-2 (HF GPT2LMHeadModel) over libtorch, parameters in one flat buffer.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "dtorch.h"

namespace dtorch {

// kAttentionBlock is the default query rows per attention block: at seq
// 1024, 4 blocks (62.5% of the plain form's score entries).
constexpr int64_t kAttentionBlock = 256;

// ParamSpec is one tensor of the flat layout (see dtorch.h).
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset;
  int64_t numel;
};

std::vector<ParamSpec> Layout(const dt_config &c);
void CheckConfig(const dt_config &c);

// Block is one transformer layer; every tensor is a view into GPT2::flat.
struct Block {
  at::Tensor ln1_w, ln1_b;
  at::Tensor attn_w, attn_b;            // c_attn: [E,3E], [3E]
  at::Tensor attn_proj_w, attn_proj_b;  // attn.c_proj: [E,E], [E]
  at::Tensor ln2_w, ln2_b;
  at::Tensor fc_w, fc_b;                // mlp.c_fc: [E,I], [I]
  at::Tensor proj_w, proj_b;            // mlp.c_proj: [I,E], [E]
};

struct GPT2 {
  GPT2(const dt_config &cfg, at::Device device, uint64_t seed);

  // Loss for training: forward with dropout, backward of loss*scale into
  // flat_grad. Returns the mean loss over counted targets.
  double TrainStep(const at::Tensor &x, const at::Tensor &y, double scale, int64_t *count);
  // Sum of cross-entropy over counted targets, no gradients, dropout off.
  double EvalSum(const at::Tensor &x, const at::Tensor &y, int64_t *count);
  // Logits [B,T,V] (or [B,V] for the last position), dropout off.
  at::Tensor Logits(const at::Tensor &x, bool last_only);
  // L2 norm of flat_grad. On the CPU it is the same on every CPU and at
  // every thread count: miners in gradients mode clip the same averaged
  // gradient by it and must take the same step.
  double GradNorm() const;
  // Reseeds the dropout generator, so a trainer can make step k's masks a
  // function of (seed, k) and resume exactly without saving generator state.
  void SeedDropout(uint64_t seed);
  // SetCompute picks the dtype matmuls and attention run in: float32, or
  // bfloat16 mixed precision over the float32 master weights.
  void SetCompute(at::ScalarType dtype);
  // SetAttentionBlock sets the query rows per block of the causal
  // attention for sequences longer than that; 0 computes the whole [T,T]
  // scores at once (the plain form) at every length.
  void SetAttentionBlock(int64_t rows) {
    if (rows < 0) throw std::invalid_argument("attention block must be >= 0");
    attn_block_ = rows;
  }
  // Host copies of the flat buffers; on CUDA they pass through one pinned
  // staging buffer, a single DMA each way.
  void CopyToHost(const at::Tensor &src, float *dst);
  void CopyFromHost(const float *src, const at::Tensor &dst);

  dt_config cfg;
  at::Device device;
  std::vector<ParamSpec> specs;
  at::Tensor flat, flat_grad;       // [numel] float32 on device
  std::vector<at::Tensor> params;   // views of flat, layout order
  at::Tensor wte, wpe, lnf_w, lnf_b;
  at::Tensor wte_grad, wpe_grad;    // views of flat_grad, filled by hand
  std::vector<Block> h;

 private:
  void InitWeights(at::Tensor cpu_flat, uint64_t seed) const;
  void BindViews();
  // Embeddings: token + position, [B,T,E]. No autograd: wte and wpe get
  // their gradient by hand in TrainStep.
  at::Tensor Embed(const at::Tensor &x) const;
  // Transformer body from embeddings to ln_f output [B,T,E].
  at::Tensor Body(at::Tensor x, bool train);
  at::Tensor Attention(const at::Tensor &x, const Block &b, bool train);
  at::Tensor Mlp(const at::Tensor &x, const Block &b, bool train);
  at::Tensor Dropout(const at::Tensor &x, double p, bool train);
  at::Tensor Staging(int64_t n);
  // Low is t in the compute dtype. Casting a parameter inside the graph
  // makes autograd cast its gradient back and accumulate it, in float32,
  // into flat_grad: PyTorch autocast's contract, without its dispatch key.
  at::Tensor Low(const at::Tensor &t) const { return t.scalar_type() == compute_ ? t : t.to(compute_); }

  at::Generator gen_;      // dropout
  at::Tensor causal_;      // [P,P] additive mask: -inf above the diagonal, else 0
  at::Tensor probs_;       // [N,V] scratch for the training loss, reused
  at::ScalarType compute_ = at::kFloat;
  // Query rows per block of BlockedCausalAttention, for sequences longer
  // than one block; 0: the plain form, which attention dropout always
  // takes.
  int64_t attn_block_ = kAttentionBlock;
  at::Tensor staging_;     // pinned host buffer for CUDA copies, made on first use
};

// LM-head cross-entropy for training (lmhead.cpp). hidden [N,E] carries
// autograd; the gradient for wte is added straight into wte_grad. The two
// GEMMs of each direction run in compute; probabilities stay float32. count
// is the number of targets that are not -1; the loss must be the root of the
// backward pass, with gradient scale (known here, so backward never reads a
// device scalar back).
at::Tensor LMHeadLoss(const at::Tensor &hidden, const at::Tensor &wte, const at::Tensor &targets,
                      at::Tensor &probs, const at::Tensor &wte_grad, int64_t count, double scale,
                      at::ScalarType compute);
// Sum of cross-entropy without keeping logits (lmhead.cpp).
double LMHeadLossSum(const at::Tensor &hidden, const at::Tensor &wte, const at::Tensor &targets,
                     at::ScalarType compute);

}  // namespace dtorch
