// adamw.cpp: AdamW over the flat parameter buffer (Loshchilov & Hutter,
// "Decoupled Weight Decay Regularization", Alg. 2; the update of
// torch.optim.AdamW). On CPU one fused pass per tensor reads p, g, m, v once
// and writes p, m, v once (AdamWSpan, kernels.cpp). On CUDA, libtorch >= 2.1's fused multi-tensor
// kernel (torch.optim.AdamW(fused=True)) does the same; elsewhere the update
// runs as tensor ops per tensor.
#include "adamw.h"

#include <ATen/Parallel.h>
#include <cmath>
#include <stdexcept>

#include "kernels.h"

namespace dtorch {

AdamW::AdamW(GPT2 *model, const dt_adamw_config &cfg) : model_(model), cfg_(cfg) {
  if (!(cfg.beta1 >= 0 && cfg.beta1 < 1) || !(cfg.beta2 >= 0 && cfg.beta2 < 1))
    throw std::invalid_argument("adamw: betas must be in [0, 1)");
  if (!(cfg.eps > 0)) throw std::invalid_argument("adamw: eps must be > 0");
  if (!(cfg.weight_decay >= 0)) throw std::invalid_argument("adamw: weight_decay must be >= 0");
  exp_avg = at::zeros_like(model->flat);
  exp_avg_sq = at::zeros_like(model->flat);
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
bool AdamW::FusedStep(double lr) {
  if (!model_->flat.is_cuda()) return false;
  if (!step_t_.defined()) {
    // The kernel reads the step count from a device tensor per parameter;
    // every parameter shares one. The views never move: the flat buffers
    // are only ever written in place.
    step_t_ = at::zeros({}, model_->flat.options());
    for (const auto &s : model_->specs) {
      FusedGroup &g = fused_[s.shape.size() == 2 ? 1 : 0];
      g.p.push_back(model_->flat.narrow(0, s.offset, s.numel));
      g.g.push_back(model_->flat_grad.narrow(0, s.offset, s.numel));
      g.m.push_back(exp_avg.narrow(0, s.offset, s.numel));
      g.v.push_back(exp_avg_sq.narrow(0, s.offset, s.numel));
      g.steps.push_back(step_t_);
    }
  }
  step_t_.fill_(double(step + 1));  // the step about to be taken
  for (int k = 0; k < 2; k++) {
    const FusedGroup &g = fused_[k];
    if (g.p.empty()) continue;
    at::_fused_adamw_(g.p, g.g, g.m, g.v, /*max_exp_avg_sqs=*/{}, g.steps, lr, cfg_.beta1, cfg_.beta2,
                      k == 1 ? cfg_.weight_decay : 0.0, cfg_.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
  step++;
  return true;
}
#else
bool AdamW::FusedStep(double) { return false; }
#endif

void AdamW::Step(double lr) {
  if (!(lr >= 0) || !std::isfinite(lr)) throw std::invalid_argument("adamw: lr must be finite and >= 0");
  at::NoGradGuard no_grad;
  if (FusedStep(lr)) return;
  step++;
  const double bc1 = 1 - std::pow(cfg_.beta1, double(step));
  const double bc2 = 1 - std::pow(cfg_.beta2, double(step));
  for (const auto &s : model_->specs) {
    // Decay matrices only: biases, LayerNorm gains and the like are not
    // weights whose magnitude should shrink.
    const double wd = s.shape.size() == 2 ? cfg_.weight_decay : 0.0;
    at::Tensor p = model_->flat.narrow(0, s.offset, s.numel);
    at::Tensor g = model_->flat_grad.narrow(0, s.offset, s.numel);
    at::Tensor m = exp_avg.narrow(0, s.offset, s.numel);
    at::Tensor v = exp_avg_sq.narrow(0, s.offset, s.numel);
    if (p.device().is_cpu()) {
      const AdamWCoeffs c{float(cfg_.beta1), float(cfg_.beta2), float(cfg_.eps), float(1 - lr * wd),
                          float(lr / bc1), float(std::sqrt(bc2))};
      float *pp = p.data_ptr<float>(), *mp = m.data_ptr<float>(), *vp = v.data_ptr<float>();
      const float *gp = g.data_ptr<float>();
      at::parallel_for(0, s.numel, 1 << 15, [&](int64_t b, int64_t e) {
        AdamWSpan(pp + b, gp + b, mp + b, vp + b, e - b, c);
      });
    } else {
      p.mul_(1 - lr * wd);
      m.lerp_(g, 1 - cfg_.beta1);
      v.mul_(cfg_.beta2).addcmul_(g, g, 1 - cfg_.beta2);
      p.addcdiv_(m, v.sqrt().div_(std::sqrt(bc2)).add_(cfg_.eps), -lr / bc1);
    }
  }
}

}  // namespace dtorch
