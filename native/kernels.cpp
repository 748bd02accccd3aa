// kernels.cpp: the hand-written CPU loops (kernels.h).
//
// On x86 each kernel is compiled three times, for AVX-512, AVX2 and the
// x86-64 baseline (target_clones), and the loader picks the best the CPU
// has. Elsewhere (aarch64: Grace, Graviton) it is compiled once, for the
// target's own vector unit, and so it is on x86 when DTORCH_NO_CLONES is
// defined (cmake -DDTORCH_NO_CLONES=ON), or with a compiler that lacks
// target_clones.
//
// Every build gives the same bits: nothing here is reassociated (the lanes
// of the sums and maxima are written out, and there is no -ffast-math), and
// CMakeLists.txt compiles with -ffp-contract=off. Without it GCC fuses a*b+c
// into one FMA in the AVX-512 clone but not in the AVX2 one (AVX2 does not
// imply FMA), and always on aarch64: the same AdamW step would give other
// parameters on a Zen 3 than on a Zen 4. It costs the softmax kernels ~40%
// (RowMax and SumExpOnly over 256 GPT-2 rows on one Sapphire Rapids core:
// 5.4-5.9 ms with FMAs, 7.7-8.3 ms without); the timings quoted below and
// in lmhead.cpp were taken with FMAs.
#include "kernels.h"

#include <cmath>
#include <cstring>
#include <limits>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(DTORCH_NO_CLONES)
#define DTORCH_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DTORCH_CLONES
#endif

namespace dtorch {

DTORCH_CLONES void AdamWSpan(float *__restrict p, const float *__restrict g, float *__restrict m,
                             float *__restrict v, int64_t n, AdamWCoeffs c) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = c.b1 * m[i] + (1 - c.b1) * gi;
    const float vi = c.b2 * v[i] + (1 - c.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * c.decay - c.step_size * mi / (std::sqrt(vi) / c.bc2_sqrt + c.eps);
  }
}

namespace {

// Lanes of the per-row loops: explicit partial maxima and sums, which GCC
// vectorizes without -ffast-math. Sums take one AVX-512 register (the exp
// bounds the loop); maxima take four, so that four vmaxps are in flight
// (measured: 256 rows in 1.8 ms, against 2.3 ms with one). The lane count,
// not the vector width, fixes the order of the sums.
constexpr int kSumLanes = 16, kMaxLanes = 64;

// ExpNonPositive is exp(x) for x <= 0 (Cephes expf: x = n·ln2 + r with a
// two-part ln2, degree-6 polynomial for e^r), within 8.5e-8 relative and
// unbiased (mean error ~1e-9); inputs below the log of the smallest normal
// float give 0, NaN gives NaN. Branch-free, so the loops calling it
// vectorize; it was faster than glibc's libmvec expf (5.3 ms vs 4.8 ms).
inline __attribute__((always_inline)) float ExpNonPositive(float x) {
  const float round = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + round) - round;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float e = p * scale;
  return x < -87.33654f ? 0.0f : e;
}

// SumExp returns Σ exp(x[i] - shift), writing the terms to out unless it
// is null. Against a float64 log-sum-exp of 50257-wide rows, plain float
// lanes are off by up to 2e-8 relative; Kahan-compensated lanes by 2e-9, at
// the same speed. A float64 sum does not vectorize (7x slower).
template <bool kStore>
inline __attribute__((always_inline)) double SumExp(const float *x, float *out, int64_t n, float shift) {
  float s[kSumLanes] = {}, c[kSumLanes] = {};
  int64_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes) {
    for (int j = 0; j < kSumLanes; j++) {
      const float e = ExpNonPositive(x[i + j] - shift);
      if (kStore) out[i + j] = e;
      // Kahan summation (Higham, "Accuracy and Stability", Alg. 4.2).
      const float y = e - c[j], t = s[j] + y;
      c[j] = (t - s[j]) - y;
      s[j] = t;
    }
  }
  double total = 0;
  for (int j = 0; j < kSumLanes; j++) total += double(s[j]) - double(c[j]);
  for (; i < n; i++) {
    const float e = ExpNonPositive(x[i] - shift);
    if (kStore) out[i] = e;
    total += e;
  }
  return total;
}

}  // namespace

DTORCH_CLONES float RowMax(const float *x, int64_t n) {
  float m[kMaxLanes];
  for (int j = 0; j < kMaxLanes; j++) m[j] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + kMaxLanes <= n; i += kMaxLanes)
    for (int j = 0; j < kMaxLanes; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
  float mx = -std::numeric_limits<float>::infinity();
  for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  for (int j = 0; j < kMaxLanes; j++) mx = m[j] > mx ? m[j] : mx;
  return mx;
}

DTORCH_CLONES double SumExpInPlace(float *x, int64_t n, float shift) { return SumExp<true>(x, x, n, shift); }

DTORCH_CLONES double SumExpOnly(const float *x, int64_t n, float shift) {
  return SumExp<false>(x, nullptr, n, shift);
}

DTORCH_CLONES void ScaleRow(float *x, int64_t n, float by) {
  for (int64_t i = 0; i < n; i++) x[i] *= by;
}

// Each square is exact (a float's 24-bit significand squared fits in a
// double's 53); the sum runs in kSquareLanes lanes, one AVX-512 register.
DTORCH_CLONES double SumSquares(const float *x, int64_t n) {
  constexpr int kSquareLanes = 8;
  double s[kSquareLanes] = {};
  int64_t i = 0;
  for (; i + kSquareLanes <= n; i += kSquareLanes)
    for (int j = 0; j < kSquareLanes; j++) s[j] += double(x[i + j]) * double(x[i + j]);
  double total = 0;
  for (int j = 0; j < kSquareLanes; j++) total += s[j];
  for (; i < n; i++) total += double(x[i]) * double(x[i]);
  return total;
}

}  // namespace dtorch
