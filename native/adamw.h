// adamw.h: AdamW over a GPT2's flat parameters.
#pragma once

#include "gpt2.h"

namespace dtorch {

struct AdamW {
  AdamW(GPT2 *model, const dt_adamw_config &cfg);
  void Step(double lr);

  at::Tensor exp_avg, exp_avg_sq;  // flat, like the parameters
  int64_t step = 0;

 private:
  GPT2 *model_;
  dt_adamw_config cfg_;
};

}  // namespace dtorch
