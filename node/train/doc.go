// Package train runs single-node GPT-2 training: a cosine learning-rate
// schedule with warmup, gradient accumulation to a batch measured in
// tokens, gradient clipping, periodic held-out evaluation, and atomic
// checkpoints from which a run resumes exactly (same data position, same
// optimizer state, same dropout masks). The trainer reports what happens
// through an Observer; logs, metrics files and progress bars live with the
// caller.
package train
