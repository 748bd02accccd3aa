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
//     hands them to a Verifier. NormCheck, the built-in one, catches
//     non-finite, all-zero and copied updates and those whose norm per
//     claimed sample is far above the others'; node/verify plugs in through
//     the same interface. The epoch's weights wait for the audits.
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
// and logs one line per miner.
//
// State. A validator needs the swarm's state only to match the miners'
// matchmaking key (the hash of the state they start from), so it follows
// the state by hash: when the epoch rules (node/epoch) say to load a state
// that two or more peers hold, it takes that (epoch, hash) without
// fetching the parameters, and its progress reports offer nothing. A work
// check that needs the parameters (loss before/after) loads them itself.
//
// Trust. Miners take an aux member only from the run's validator list
// (swarm.validators); they neither expect validators in their matchmaking
// nor wait for them (node/epoch Config.Validators), and the validator
// announces itself as soon as a miner of its epoch has, so it joins their
// window without holding it open.
package validator
