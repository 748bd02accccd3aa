// kernels.h: the CPU loops libdtorch writes by hand, over plain float
// arrays: AdamW's update (adamw.cpp) and the LM head's softmax rows
// (lmhead.cpp). No libtorch here, so kernels.cpp builds, and can be checked,
// on any architecture by itself.
//
// Every kernel gives the same bits on every CPU, whichever ISA it was
// compiled for: a swarm in gradients mode applies one AdamW step on every
// miner and compares the parameters by hash.
#pragma once

#include <cstdint>

namespace dtorch {

// AdamWCoeffs are one step's scalars of the AdamW update.
struct AdamWCoeffs {
  float b1, b2, eps, decay, step_size, bc2_sqrt;
};

// AdamWSpan applies one AdamW step to n parameters p with gradients g and
// moments m, v, in place, reading and writing each once.
void AdamWSpan(float *p, const float *g, float *m, float *v, int64_t n, AdamWCoeffs c);

// RowMax is the largest of x[0..n), -inf when n is 0.
float RowMax(const float *x, int64_t n);

// SumExpInPlace returns Σ exp(x[i] - shift) and replaces each x[i] by its
// term; SumExpOnly only reads x. shift must be >= every x[i].
double SumExpInPlace(float *x, int64_t n, float shift);
double SumExpOnly(const float *x, int64_t n, float shift);

// ScaleRow multiplies x[0..n) by by.
void ScaleRow(float *x, int64_t n, float by);

// SumSquares is Σ x[i]² in float64.
double SumSquares(const float *x, int64_t n);

}  // namespace dtorch
