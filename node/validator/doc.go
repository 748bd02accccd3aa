// Package validator is the validating peer of a dtrain run: it follows the
// swarm's epochs with node/epoch's Machine in the aux role, never trains,
// joins the miners' all-reduce groups as an aux member (weight 0, one span
// to reduce), probes the miners' links on a bounded schedule, and turns
// what it saw into weights with node/score, written every epoch to the
// configured sinks.
//
// What it observes, per epoch:
//
//   - Rounds: in every group it joins it owns a span, so it receives every
//     contributor's part of that span. A contributor in the round's result
//     delivered (score.Round OnTime); one left out, Missed. A committed
//     round's owner checks each part against the root the member announced
//     (node/allreduce, commit.go): a part that does not match is proof the
//     member sent something other than what it committed to, a Cheat
//     verdict.
//   - Work: after a round it fetches up to four contributors' committed
//     vectors from the miners, rotating with the epoch (node/allreduce/p2p
//     FetchContribution, checked against the roots the group agreed on, so
//     the values audited are provably those that entered the average), and
//     hands them to a Verifier, once per epoch (the validator announces,
//     so joins a group, once per epoch). WorkCheck, chosen when the
//     validator has the run's miner config and data (verify.run_config)
//     and the run is in diloco mode, runs node/verify on them: it builds
//     verify's Epoch from the state of that epoch the validator loaded
//     (see State) and the run's schedule, recomputes each miner's
//     micro-batches from its public lane (node/data), draws the reference
//     windows from a lane of an id only it knows, logs each miner's
//     evidence and its compute against the audited miners' (forward
//     tokens; a training token counts 3). With fewer than three audits,
//     verify's comparisons between updates do not run (its vector checks
//     and an unpaired lane test do). NormCheck, the fallback (no run
//     config, gradients mode, verify.mode norm, an epoch outside
//     verify.every_epochs, a state that did not load), catches
//     non-finite, all-zero and copied updates and those whose norm per
//     claimed sample is far above the others'. Every vector is checked
//     for the model's length and finite values before any use. The
//     epoch's weights wait for the audits.
//   - Probes: RTT and both directions' bandwidth (netx.Ping,
//     netx.MeasureBandwidth on the run's probe protocol), each miner at most
//     once every probe.every_epochs epochs and at most probe.max_miners per
//     epoch, oldest-probed first, so no miner's link carries more than
//     2·probe.bytes per that many epochs for this validator.
//   - Sightings: every miner's progress report (score.Seen, with how many
//     epochs it is behind this validator).
//
// When the validator's epoch moves past e and e's rounds, audits and
// probes are done, it closes e in the scorer and writes the weights (score.Weights, with the Bittensor form) to its sinks
// and logs one line per miner. It then gossips its exclusions
// (node/verdicts, exclude.go): a miner it caught cheating in epoch e' is
// excluded from the groups of epochs e'+2 to e'+2+score.exclude_epochs·
// 2^(strikes−1); miners refuse its announcements there and stop expecting
// it, and so does this validator's own matchmaking.
//
// State. A validator follows the swarm's state by hash: when the epoch
// rules (node/epoch) say to load a state that two or more peers hold, it
// takes that (epoch, hash) at once, and its progress reports offer
// nothing. With a WorkCheck it also loads that state from those peers as
// a miner does (node/state Load), in the background, and keeps the last
// two epochs' (holder: parameters, outer momentum and previous average,
// 12 bytes per parameter each, plus at most two loads in flight): an
// epoch's audits wait for its state. The previous epoch's average, which
// verify's echo, replay and stale checks need, is recovered from two
// consecutive states' outer momenta (v_e = μ·v_{e−1} + Δ), checked
// against their parameters; it is nil for the first state a validator
// loads and after a change of lineage.
//
// Trust. Miners take an aux member only from the run's validator list
// (swarm.validators), and exclusions from those validators only; they do
// not count validators among the contributors they wait for (node/epoch
// Config.Validators). The validator announces itself as soon as a miner
// of its epoch has; miners whose expected contributors are all ready wait
// at most one message delay more for a validator whose report follows
// their epoch (matchmaking Config.ExpectedAux), so it joins their window
// even when they all finish within milliseconds.
package validator
