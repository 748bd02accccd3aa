// dtorch.cpp: the C ABI. Every entry point catches every exception and
// returns it as a malloc'd string; nothing throws into the caller.
#include "dtorch.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "adamw.h"
#include "cpualloc.h"
#include "gpt2.h"

struct dt_model {
  dtorch::GPT2 gpt;
};
struct dt_adamw {
  dtorch::AdamW opt;
};

namespace {

char *Error(const std::string &msg) {
  char *s = static_cast<char *>(std::malloc(msg.size() + 1));
  if (s) std::memcpy(s, msg.c_str(), msg.size() + 1);
  return s;
}

// Guard runs f and turns any exception into an error string. c10::Error
// messages carry a C++ backtrace; keep only the first line for users.
template <typename F>
char *Guard(F &&f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    return Error(e.what_without_backtrace());
  } catch (const std::exception &e) {
    return Error(e.what());
  } catch (...) {
    return Error("unknown C++ exception");
  }
}

void Require(bool ok, const std::string &msg) {
  if (!ok) throw std::invalid_argument(msg);
}

void CheckLen(int64_t n, const at::Tensor &t, const char *what) {
  Require(n == t.numel(), std::string(what) + ": buffer holds " + std::to_string(n) + " values, model has " +
                              std::to_string(t.numel()));
}

// HostView wraps caller memory as a CPU tensor without copying.
at::Tensor HostView(const void *p, at::IntArrayRef shape, at::ScalarType type) {
  return at::from_blob(const_cast<void *>(p), shape, at::TensorOptions().dtype(type));
}

// ParseDtype accepts the compute dtypes: float32 (the default) and bfloat16.
at::ScalarType ParseDtype(const char *s) {
  const std::string d = s ? s : "";
  if (d.empty() || d == "float32") return at::kFloat;
  if (d == "bfloat16") return at::kBFloat16;
  throw std::invalid_argument("dtype \"" + d + "\": want float32 or bfloat16");
}

at::Tensor Tokens(const int32_t *p, int64_t batch, int64_t seq) {
  Require(p != nullptr, "tokens: null pointer");
  Require(batch > 0 && seq > 0, "tokens: batch and seq must be > 0");
  return HostView(p, {batch, seq}, at::kInt);
}

}  // namespace

extern "C" const char *dt_build_info(void);

namespace {

// UsableDevice parses a device name and checks that this build can use it.
at::Device UsableDevice(const char *name) {
  const at::Device dev(name ? name : "cpu");
  if (dev.is_cuda()) {
    Require(torch::cuda::is_available(), "device " + dev.str() + ": no CUDA device usable by this libdtorch (" +
                                             dt_build_info() + "; a GPU build is ./build.sh --cuda)");
    Require(dev.index() < int(torch::cuda::device_count()), "device " + dev.str() + ": no such CUDA device");
  }
  return dev;
}

}  // namespace

extern "C" {

void dt_free(void *p) { std::free(p); }

int32_t dt_abi_version(void) { return DT_ABI_VERSION; }

int32_t dt_cpu_cache(int64_t *mapped, int64_t *cached, int64_t *hits, int64_t *misses) {
  const dtorch::CPUCacheStats s = dtorch::GetCPUCacheStats();
  *mapped = s.mapped_bytes, *cached = s.cached_bytes, *hits = s.hits, *misses = s.misses;
  return dtorch::CPUCacheInstalled() ? 1 : 0;
}

const char *dt_build_info(void) {
  static const std::string info =
      std::string("libtorch ") + TORCH_VERSION +
      (torch::cuda::is_available() ? ", cuda, " + std::to_string(torch::cuda::device_count()) + " device(s)"
                                   : ", cpu only");
  return info.c_str();
}

char *dt_set_num_threads(int32_t n) {
  return Guard([&] {
    Require(n > 0, "threads must be > 0");
    at::set_num_threads(n);
    // Debian's libtorch calls BLAS through libblas.so.3; when that is
    // OpenBLAS, its own thread pool ignores at::set_num_threads.
    using SetThreads = void (*)(int);
    if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
  });
}

int32_t dt_get_num_threads(void) { return at::get_num_threads(); }

int32_t dt_cuda_device_count(void) {
  try {
    return torch::cuda::device_count();
  } catch (...) {
    return 0;
  }
}

char *dt_matmul_gflops(const char *device, const char *dtype, int64_t n, int32_t iters, double *gflops) {
  return Guard([&] {
    Require(n > 0 && iters > 0, "matmul: n and iters must be > 0");
    at::NoGradGuard no_grad;
    const at::Device dev = UsableDevice(device);
    const auto opts = at::TensorOptions().device(dev).dtype(ParseDtype(dtype));
    at::Tensor a = at::randn({n, n}, opts);
    at::Tensor b = at::randn({n, n}, opts);
    at::Tensor c = at::mm(a, b);  // warm up
    if (dev.is_cuda()) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int32_t i = 0; i < iters; i++) at::mm_out(c, a, b);
    if (dev.is_cuda()) torch::cuda::synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *gflops = 2.0 * double(n) * double(n) * double(n) * iters / s / 1e9;
  });
}

char *dt_model_new(const dt_config *cfg, const char *device, uint64_t seed, dt_model **out) {
  return Guard([&] {
    Require(cfg && out, "model: null argument");
    *out = nullptr;
    const at::Device dev = UsableDevice(device);
    *out = new dt_model{dtorch::GPT2(*cfg, dev, seed)};
  });
}

void dt_model_free(dt_model *m) { delete m; }

int64_t dt_model_numel(const dt_model *m) { return m->gpt.flat.numel(); }

int32_t dt_model_tensor_count(const dt_model *m) { return int32_t(m->gpt.specs.size()); }

char *dt_model_tensor(const dt_model *m, int32_t i, char *name, int32_t name_cap, int32_t *ndim,
                      int64_t *shape, int64_t *offset) {
  return Guard([&] {
    Require(i >= 0 && size_t(i) < m->gpt.specs.size(), "tensor index out of range");
    Require(name_cap > 0, "name buffer too small");
    const auto &s = m->gpt.specs[i];
    std::snprintf(name, size_t(name_cap), "%s", s.name.c_str());
    *ndim = int32_t(s.shape.size());
    for (size_t d = 0; d < s.shape.size(); d++) shape[d] = s.shape[d];
    *offset = s.offset;
  });
}

char *dt_model_get_params(dt_model *m, float *dst, int64_t n) {
  return Guard([&] {
    CheckLen(n, m->gpt.flat, "get params");
    m->gpt.CopyToHost(m->gpt.flat, dst);
  });
}

char *dt_model_set_params(dt_model *m, const float *src, int64_t n) {
  return Guard([&] {
    CheckLen(n, m->gpt.flat, "set params");
    m->gpt.CopyFromHost(src, m->gpt.flat);
  });
}

char *dt_model_get_grads(dt_model *m, float *dst, int64_t n) {
  return Guard([&] {
    CheckLen(n, m->gpt.flat_grad, "get grads");
    m->gpt.CopyToHost(m->gpt.flat_grad, dst);
  });
}

char *dt_model_set_grads(dt_model *m, const float *src, int64_t n) {
  return Guard([&] {
    CheckLen(n, m->gpt.flat_grad, "set grads");
    m->gpt.CopyFromHost(src, m->gpt.flat_grad);
  });
}

char *dt_model_set_compute(dt_model *m, const char *dtype) {
  return Guard([&] { m->gpt.SetCompute(ParseDtype(dtype)); });
}

char *dt_model_seed_dropout(dt_model *m, uint64_t seed) {
  return Guard([&] { m->gpt.SeedDropout(seed); });
}

char *dt_model_set_attention_block(dt_model *m, int64_t rows) {
  return Guard([&] { m->gpt.SetAttentionBlock(rows); });
}

char *dt_model_zero_grad(dt_model *m) {
  return Guard([&] {
    at::NoGradGuard no_grad;
    m->gpt.flat_grad.zero_();
  });
}

char *dt_model_clip_grad(dt_model *m, double max_norm, double *norm) {
  return Guard([&] {
    at::NoGradGuard no_grad;
    const double total = m->gpt.GradNorm();
    *norm = total;
    // torch.nn.utils.clip_grad_norm_: scale by max_norm/(norm+1e-6) when < 1.
    const double coef = max_norm / (total + 1e-6);
    if (max_norm > 0 && coef < 1) m->gpt.flat_grad.mul_(coef);
  });
}

char *dt_model_train_step(dt_model *m, const int32_t *x, const int32_t *y, int64_t batch, int64_t seq,
                          double loss_scale, double *loss, int64_t *count) {
  return Guard([&] {
    // DTRAIN_PROFILE=file.json writes a chrome://tracing profile of each step.
    static const char *profile = std::getenv("DTRAIN_PROFILE");
    std::unique_ptr<torch::autograd::profiler::RecordProfile> rec;
    if (profile) rec = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(profile));
    *loss = m->gpt.TrainStep(Tokens(x, batch, seq), Tokens(y, batch, seq), loss_scale, count);
  });
}

char *dt_model_eval(dt_model *m, const int32_t *x, const int32_t *y, int64_t batch, int64_t seq,
                    double *loss_sum, int64_t *count) {
  return Guard([&] { *loss_sum = m->gpt.EvalSum(Tokens(x, batch, seq), Tokens(y, batch, seq), count); });
}

char *dt_model_logits(dt_model *m, const int32_t *x, int64_t batch, int64_t seq, int32_t last_only,
                      float *out, int64_t out_len) {
  return Guard([&] {
    at::Tensor logits = m->gpt.Logits(Tokens(x, batch, seq), last_only != 0);
    Require(out_len == logits.numel(), "logits: output buffer holds " + std::to_string(out_len) +
                                           " values, need " + std::to_string(logits.numel()));
    HostView(out, logits.sizes(), at::kFloat).copy_(logits);
  });
}

char *dt_adamw_new(dt_model *m, const dt_adamw_config *cfg, dt_adamw **out) {
  return Guard([&] {
    Require(m && cfg && out, "adamw: null argument");
    *out = nullptr;
    *out = new dt_adamw{dtorch::AdamW(&m->gpt, *cfg)};
  });
}

void dt_adamw_free(dt_adamw *o) { delete o; }

char *dt_adamw_step(dt_adamw *o, double lr) {
  return Guard([&] { o->opt.Step(lr); });
}

char *dt_adamw_get_state(dt_adamw *o, float *exp_avg, float *exp_avg_sq, int64_t n, int64_t *step) {
  return Guard([&] {
    CheckLen(n, o->opt.exp_avg, "adamw state");
    HostView(exp_avg, {n}, at::kFloat).copy_(o->opt.exp_avg);
    HostView(exp_avg_sq, {n}, at::kFloat).copy_(o->opt.exp_avg_sq);
    *step = o->opt.step;
  });
}

char *dt_adamw_set_state(dt_adamw *o, const float *exp_avg, const float *exp_avg_sq, int64_t n, int64_t step) {
  return Guard([&] {
    CheckLen(n, o->opt.exp_avg, "adamw state");
    Require(step >= 0, "adamw state: negative step");
    o->opt.exp_avg.copy_(HostView(exp_avg, {n}, at::kFloat));
    o->opt.exp_avg_sq.copy_(HostView(exp_avg_sq, {n}, at::kFloat));
    o->opt.step = step;
  });
}

}  // extern "C"
