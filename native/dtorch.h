/*
 * dtorch.h: the C ABI of libdtorch, dtrain's GPT-2 over libtorch.
 *
 * Conventions:
 *  - Every function that can fail returns NULL on success or an error string
 *    allocated with malloc, which the caller frees with dt_free. No C++
 *    exception ever crosses this boundary.
 *  - Calls are coarse: one call runs a whole forward+loss+backward over a
 *    batch, or a whole optimizer step, or copies a whole flat buffer.
 *  - Handles are not thread-safe; the caller serializes calls per handle.
 *  - Tokens are int32. Targets equal to -1 are ignored by the loss.
 *
 * Flat buffers: a model's parameters live in ONE contiguous float32 tensor,
 * and so do its gradients, in this order (HF GPT-2 names and shapes, Conv1D
 * weights stored [in, out]):
 *   wte.weight [V,E], wpe.weight [P,E],
 *   for each layer i: h.i.ln_1.weight [E], h.i.ln_1.bias [E],
 *     h.i.attn.c_attn.weight [E,3E], h.i.attn.c_attn.bias [3E],
 *     h.i.attn.c_proj.weight [E,E], h.i.attn.c_proj.bias [E],
 *     h.i.ln_2.weight [E], h.i.ln_2.bias [E],
 *     h.i.mlp.c_fc.weight [E,I], h.i.mlp.c_fc.bias [I],
 *     h.i.mlp.c_proj.weight [I,E], h.i.mlp.c_proj.bias [E],
 *   ln_f.weight [E], ln_f.bias [E].
 * I is n_inner (4E when 0). dt_model_tensor reports the same layout.
 */
#ifndef DTORCH_H
#define DTORCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DT_ABI_VERSION 5

typedef struct dt_model dt_model;
typedef struct dt_adamw dt_adamw;

/* dt_config mirrors the HF GPT2Config fields the model computes with. */
typedef struct {
  int64_t n_layer;
  int64_t n_head;
  int64_t n_embd;
  int64_t n_positions;
  int64_t vocab_size;
  int64_t n_inner;          /* MLP width; 0 means 4*n_embd */
  double layer_norm_epsilon;
  int32_t gelu_tanh;        /* 1: gelu_new (tanh approximation); 0: exact gelu */
  double embd_pdrop;
  double attn_pdrop;
  double resid_pdrop;
  double initializer_range; /* init std, 0.02 in GPT-2 */
} dt_config;

typedef struct {
  double beta1;
  double beta2;
  double eps;
  double weight_decay; /* applied to 2-D parameters only */
} dt_adamw_config;

/* Library. */
void dt_free(void *p);
int32_t dt_abi_version(void);
/* dt_build_info returns a static string: libtorch version and devices. */
const char *dt_build_info(void);
char *dt_set_num_threads(int32_t n);
int32_t dt_get_num_threads(void);
int32_t dt_cuda_device_count(void);
/* dt_cpu_cache reports whether libdtorch's caching CPU allocator serves
 * libtorch's CPU tensors (not under DTRAIN_CPU_ALLOC=malloc) and fills its
 * counters: bytes mapped, bytes kept unused, hits, misses. */
int32_t dt_cpu_cache(int64_t *mapped, int64_t *cached, int64_t *hits, int64_t *misses);
/* dt_matmul_gflops times an n×n matmul on device in dtype ("float32" or
 * "bfloat16") and reports GFLOP/s. */
char *dt_matmul_gflops(const char *device, const char *dtype, int64_t n, int32_t iters, double *gflops);

/* Model. device is "cpu", "cuda" or "cuda:N". Weights are initialized as
 * GPT-2 does from seed, on the CPU, so a seed gives the same model on every
 * device. Dropout and other randomness during training draw from a
 * generator seeded with seed too. */
char *dt_model_new(const dt_config *cfg, const char *device, uint64_t seed, dt_model **out);
void dt_model_free(dt_model *m);
int64_t dt_model_numel(const dt_model *m);
int32_t dt_model_tensor_count(const dt_model *m);
/* dt_model_tensor describes tensor i of the flat layout: name (NUL-terminated,
 * truncated to name_cap), ndim (<= 2) and shape, and its element offset. */
char *dt_model_tensor(const dt_model *m, int32_t i, char *name, int32_t name_cap,
                      int32_t *ndim, int64_t *shape, int64_t *offset);

/* Flat parameter and gradient buffers, n float32 values each. */
char *dt_model_get_params(dt_model *m, float *dst, int64_t n);
char *dt_model_set_params(dt_model *m, const float *src, int64_t n);
char *dt_model_get_grads(dt_model *m, float *dst, int64_t n);
char *dt_model_set_grads(dt_model *m, const float *src, int64_t n);
char *dt_model_zero_grad(dt_model *m);
/* dt_model_set_compute picks the dtype of the forward/backward matmuls and
 * attention: "float32" (the default) or "bfloat16", mixed precision with
 * float32 master weights, gradients, LayerNorms, softmax and loss. */
char *dt_model_set_compute(dt_model *m, const char *dtype);
/* dt_model_seed_dropout reseeds the generator dropout masks are drawn from. */
char *dt_model_seed_dropout(dt_model *m, uint64_t seed);
/* dt_model_set_attention_block sets the query rows per block of the causal
 * attention (256 by default) for sequences longer than that; 0 computes the
 * whole [T,T] scores at once at every length. */
char *dt_model_set_attention_block(dt_model *m, int64_t rows);
/* dt_model_clip_grad reports the L2 norm of the flat gradient; with
 * max_norm > 0 it also scales the gradient so its norm is at most max_norm.
 * On the CPU the norm is the same on every CPU and at every thread count. */
char *dt_model_clip_grad(dt_model *m, double max_norm, double *norm);

/* dt_model_train_step: forward (dropout on), mean cross-entropy over the
 * targets that are not -1, and backward of loss*loss_scale, accumulated into
 * the flat gradient. x and y are [batch, seq]. Reports the unscaled mean loss
 * and the number of targets counted. */
char *dt_model_train_step(dt_model *m, const int32_t *x, const int32_t *y, int64_t batch,
                          int64_t seq, double loss_scale, double *loss, int64_t *count);
/* dt_model_eval: no gradients, dropout off; reports the SUM of cross-entropy
 * over counted targets (so callers can average over many batches exactly). */
char *dt_model_eval(dt_model *m, const int32_t *x, const int32_t *y, int64_t batch,
                    int64_t seq, double *loss_sum, int64_t *count);
/* dt_model_logits writes logits [batch, seq, V], or [batch, V] for the last
 * position only when last_only is 1. Dropout off. */
char *dt_model_logits(dt_model *m, const int32_t *x, int64_t batch, int64_t seq,
                      int32_t last_only, float *out, int64_t out_len);

/* AdamW over the model's flat parameters (PyTorch's torch.optim.AdamW
 * update). The model must outlive the optimizer. */
char *dt_adamw_new(dt_model *m, const dt_adamw_config *cfg, dt_adamw **out);
void dt_adamw_free(dt_adamw *o);
char *dt_adamw_step(dt_adamw *o, double lr);
/* State: first and second moments (n floats each, the flat layout) and the
 * step count. */
char *dt_adamw_get_state(dt_adamw *o, float *exp_avg, float *exp_avg_sq, int64_t n, int64_t *step);
char *dt_adamw_set_state(dt_adamw *o, const float *exp_avg, const float *exp_avg_sq, int64_t n, int64_t step);

#ifdef __cplusplus
}
#endif

#endif /* DTORCH_H */
