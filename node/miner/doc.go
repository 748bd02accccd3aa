// Package miner is the training peer of a dtrain swarm: it trains a GPT-2 on
// its share of the data and, every epoch, averages its update with the other
// miners (matchmaking over the run's gossip, then the butterfly all-reduce)
// so that the swarm trains one model.
//
// A miner's share of an epoch is its node/data Lane, a function of the
// run, seed, dataset, epoch and its peer id alone: its micro-batches
// k = 0, 1, … of the epoch (across inner steps or accumulated
// micro-batches) are the lane's, each with the lane's dropout seed for k.
// Its progress reports carry its epoch and, once it has trained, the
// epoch's samples, so anyone on the run's gossip recomputes exactly what
// it trained on; its epoch log's data_hash is the digest of those
// micro-batches.
//
// Two sync modes (DESIGN.md, "The training protocol"):
//
//   - diloco: each miner takes swarm.inner_steps local AdamW steps from the
//     epoch's parameters θ, then the group averages the pseudo-gradient
//     Δ = θ − θ_local weighted by samples, and every member applies the same
//     outer Nesterov SGD step (Douillard et al. 2023, "DiLoCo", Alg. 1):
//     v ← μv + Δ, θ ← θ − η(Δ + μv) (node/train's OuterNesterov).
//   - gradients: each miner accumulates gradients, one micro-batch after
//     another, until the swarm's samples for the epoch (its own and those
//     the others' progress reports give, extrapolated at their rates)
//     reach swarm.target_batch_size (hivemind's Optimizer), then the group
//     averages the gradients weighted by samples, and
//     every member takes the same clipped AdamW step, so members that
//     started the epoch with the same state end it with the same one; the
//     state hash each miner reports per epoch (param_hash) shows it.
//
// The epoch protocol itself (when to load the swarm's state, train,
// average, apply or drop an update) is node/epoch's Machine, free of I/O;
// the miner is its production driver. One goroutine owns the Machine: it
// feeds it the run's gossip (progress reports, matchmaking envelopes), a
// timer at its NextTick on wall time, and the results of the work its
// actions start in goroutines — local training, the all-reduce round of
// the formed group (node/allreduce over libp2p streams), a state load from
// peers (node/state) — and carries out the rest itself: gossiping, applying
// an averaged update, restoring a dropped epoch's start, and offering and
// checkpointing every new state, whose hash (node/state.Hash) its reports
// carry. A miner whose averaging fails drops the epoch's update and keeps
// its start state, so the swarm never splits into versions; alone (no
// other miner live for a report expiry) it applies its own update. When no
// peer is on the run at start, it loads the run's newest state from its
// HuggingFace repo (node/hub).
//
// Its span of each round is sized by its link (DESIGN.md): it probes its
// upload and download rates against a few peers when it starts and every
// few epochs, adds each full round's bytes over its time, and announces
// the slower direction's estimate (node/links) with its role, client when
// swarm.role says so or, on auto, while AutoNAT finds it unreachable. It
// serves the others' probes on the run's probe protocol within a budget.
//
// Every round's update is committed (allreduce.Commit; a delegate commits
// its group's mean for the round across groups), served to the run's
// validators and the members of its last groups, and, with
// swarm.check_owners, checked: after the round the miner recomputes one
// sampled range of every span another member sent it from the
// contributors' committed chunks (owners.go), drops the epoch's mean when
// one differs and has node/epoch distrust its sender.
//
// Besides its log, a miner reports typed events (Event: its start, each
// epoch, all-reduce round and state load, errors it carries on after, its
// stop) to Options.Events; dtrain miner writes them to metrics.jsonl and
// Prometheus, and dtrain swarm reads them from there.
package miner
