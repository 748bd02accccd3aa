// adamw.h: AdamW over a GPT2's flat parameters.
#pragma once

#include <vector>

#include "gpt2.h"

namespace dtorch {

struct AdamW {
  AdamW(GPT2 *model, const dt_adamw_config &cfg);
  void Step(double lr);

  at::Tensor exp_avg, exp_avg_sq;  // flat, like the parameters
  int64_t step = 0;

 private:
  // FusedStep is torch's fused CUDA AdamW (one multi-tensor kernel per
  // weight-decay group); false where this libtorch or device has none.
  bool FusedStep(double lr);

  GPT2 *model_;
  dt_adamw_config cfg_;
  // FusedStep's tensor lists, [0] without weight decay, [1] with: views of
  // the flat buffers, made on its first step.
  struct FusedGroup {
    std::vector<at::Tensor> p, g, m, v, steps;
  } fused_[2];
  at::Tensor step_t_;
};

}  // namespace dtorch
