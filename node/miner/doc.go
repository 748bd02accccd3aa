// Package miner is the training peer of a dtrain swarm: it trains a GPT-2 on
// its share of the data and, every epoch, averages its update with the other
// miners (matchmaking over the run's gossip, then the butterfly all-reduce)
// so that the swarm trains one model.
//
// Two sync modes (DESIGN.md, "The training protocol"):
//
//   - diloco: each miner takes swarm.inner_steps local AdamW steps from the
//     epoch's parameters θ, then the group averages the pseudo-gradient
//     Δ = θ − θ_local weighted by samples, and every member applies the same
//     outer Nesterov SGD step (Douillard et al. 2023, "DiLoCo", Alg. 1):
//     v ← μv + Δ, θ ← θ − η(Δ + μv) (node/train's OuterNesterov).
//   - gradients: each miner accumulates the gradient of train.batch_tokens
//     tokens, the group averages the gradients weighted by samples, and
//     every member takes the same clipped AdamW step, so members that
//     started the epoch with the same parameters end it with the same ones;
//     the parameter hash each miner logs per epoch shows it.
//
// A miner whose group fails to form or whose round fails drops the epoch's
// update and keeps the epoch's start state, so the swarm never splits into
// versions; alone (no other miner known) it applies its own update. It is
// never left half-averaged: node/allreduce gives the exact mean over the
// contributors it names. Each epoch a miner reports the hash of its state
// (node/progress); one that holds another state than the majority at its
// epoch, or is behind, loads the majority's state from peers (node/state),
// or from the run's HuggingFace repo when no peer serves it (node/hub).
package miner
