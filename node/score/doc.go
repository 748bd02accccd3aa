// Package score turns a validator's observations of miners into weights:
// a Scorer fed probes, rounds, work verdicts and sightings, per epoch,
// gives back a normalised weight per miner and the same vector in the form
// a Bittensor validator submits; a WeightsSink publishes it (JSONL file,
// HTTP POST).
//
// The Scorer is a plain state machine like etcd's raft: no network, no
// clock, no randomness. Time is the epoch each observation carries;
// durations and rates are measured by the caller (netx probes, node/epoch
// rounds, the work checks) and only judged here. So node/sim can drive it,
// and two validators fed the same observations compute bit-identical
// weights (same binary and architecture: Go fuses multiply-adds on arm64,
// not on amd64). Observations of one epoch may come in any order.
//
// # Observations
//
//   - Probe: RTT and the miner's up and down bandwidth as this validator
//     measured them, or a failure to reach it.
//   - Round: the miner's delivery in an all-reduce round the validator
//     joined as aux: on time, late or missed, and the rate it came at.
//   - Verdict: a work check's outcome, Pass (with a quality, e.g. the
//     relative loss improvement on the miner's assigned batches), Cheat
//     (with a reason) or Inconclusive.
//   - Seen: the miner is alive on the run, so many epochs behind the swarm.
//
// # Formula
//
// For each miner, at the end of epoch e:
//
//	score = G · W · D · (1 − λ + λ·N)     if active, else 0
//	N     = (βb·B + βl·L + βs·S) / (βb + βl + βs)   over the parts known
//	weight = score / Σ score
//
// with every component in [0, 1]:
//
//   - W, work: an EMA (Alpha) over the epochs with a verdict. A Pass samples
//     WorkFloor + (1 − WorkFloor)·min(1, q/q̃), q̃ the median of the last
//     QualityWindow positive qualities of all miners; a Cheat samples 0;
//     Inconclusive nothing. NewMinerWork until the first verdict.
//   - D, delivery: an EMA over the epochs the miner was in a round with this
//     validator of (on time + LateCredit·late) / rounds. A miner needs this
//     evidence to score at all: answering probes and gossiping earns
//     nothing.
//   - B, bandwidth: from the median up and median down rates of the last
//     ProbeWindow epochs of probes (round rates count as up samples; a failed
//     probe as 0), the slower of the two, scored ln(r/MinBandwidth) /
//     ln(TargetBandwidth/MinBandwidth) clamped to [0, 1].
//   - L, latency: the median RTT of the same window (a failed probe as ∞),
//     scored ln(MaxRTT/rtt) / ln(MaxRTT/GoodRTT) clamped to [0, 1].
//   - S, sync: an EMA of 1 − min(behind, MaxStaleness)/MaxStaleness.
//   - G, gate: 1 for a miner never caught cheating. A Cheat verdict sets it
//     to 0 in the epoch of the verdict; it then climbs as (k/K)², k the
//     epochs with a Pass since, K = RecoveryEpochs·2^(strikes−1): 20 clean
//     epochs after a first strike (0.25 after 10), 40 after a second...
//   - active: seen alive (Seen, an answered probe, a delivery) within the
//     last AliveExpiry epochs and in a round within the last RoundExpiry.
//
// Defaults: λ = NetworkShare = 0.5, βb = 0.5, βl = βs = 0.25, WorkFloor =
// NewMinerWork = LateCredit = 0.5, Alpha = 0.3, bandwidth 10 → 200 Mbit/s,
// RTT 20 → 500 ms, MaxStaleness 4.
//
// # Why this shape
//
// Work and delivery multiply: a miner that does not train, or whose updates
// never reach the average, has contributed nothing, whatever its links.
// The network can take at most λ of a score, and its parts are logarithmic
// and saturate at a target: a miner at 50 Mbit/s against others at 200
// keeps B = 0.54 and, other links equal, 0.88 of their score; nothing
// above the target earns more, so the fastest links do not take the weight
// (the acceptance asks every honest miner, one slow, to keep half the
// median weight). The quality of work is capped at the median for the same
// reason, and so that an inflated quality buys nothing.
//
// A cheat is a gate, not an EMA input: the EMA would take many epochs to
// bring a cheater down, while the gate brings it to 0 in the very epoch of
// the verdict (the acceptance asks below 10% of the median within 3 epochs
// of starting to cheat, which leaves all 3 to the work checks' sampling).
// The recovery is quadratic and doubles with every strike, so a miner that
// cheats again whenever it has earned some weight back is caught with
// little to show for it, and for longer each time.
//
// Missing observations change nothing: a miner not probed, checked or
// grouped with this validator in an epoch keeps its components (up to the
// expiries), so being picked for a check or not moves no miner's weight.
//
// # From Subnet 38 and Templar (see VALIDATION.md)
//
//   - Taken from Subnet 38: the per-miner EMA (its s = 0.6·r + 0.4·s; our
//     Alpha is 0.3, with the first sample starting the average), L1
//     normalisation, max-upscaling to u16 and the version key 1000·major +
//     10·minor + patch (ChainWeights). Not taken: its additive
//     0.75·train/‖train‖₁ + 0.25·allreduce/‖allreduce‖₁. Normalising each
//     component over the miners checked that round is what made incentive
//     drop for a miner when it was picked (a weakness it fixed later); here
//     components are absolute, in [0, 1], and only the final score is
//     normalised. And an all-reduce score of 1 for a miner that is merely
//     alive would pay idle miners; here delivery is needed evidence.
//   - Taken from Templar: the work signal (loss before and after the
//     miner's update, own vs random data; the verdicts come from the work
//     checks, which apply it) and its slashing of an invalid update to 0;
//     its sync score, simplified. Not taken: OpenSkill ratings and the top
//     20/next 10 weight ramp, which make weights rank-based and winner-take-
//     most: a slow honest miner would fall off the ramp. Templar's 0.75
//     slashes of missing or stale updates become the delivery and sync EMAs.
//   - Subnet 38's 2025 cosine-of-full-weights check is not a verdict this
//     package expects: it scores every near-start model ≈ 1, so honest and
//     lazy miners look alike. Its master validator and its all-reduce stalls
//     are the validator process's concern; this package has no master, and
//     two validators with the same observations agree exactly.
//
// # Hostile input
//
// Every observation is checked before use: NaN, ±Inf, negative or
// absurd values (rates over 1e12 bytes/s, RTTs over 10 minutes, qualities
// over 1e6 in magnitude), unknown kinds, bad miner ids (empty, over
// MaxMinerID bytes, not UTF-8, control characters) and epochs outside the
// open window are refused with an error, changing nothing. Memory is
// bounded: MaxMiners miners (see Scorer for eviction), each with
// MaxAhead+1 pending epochs of at most MaxSamples samples per kind and a
// ProbeWindow ring, plus one QualityWindow ring. Time per observation is
// constant; a close is O(miners·log miners).
//
// What this package cannot stop: a peer id costs nothing without a chain,
// so a caught cheater can come back under a new id. It then starts from
// nothing: no delivery evidence (weight 0 until it shares a round with the
// validator) and NewMinerWork until checked, below an honest miner's
// standing. Work checks should prefer new and unchecked miners.
package score
