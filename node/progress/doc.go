// Package progress tracks swarm-wide training progress: the Report every
// miner gossips on the run's topic, and a Tracker every peer runs over the
// reports it receives to decide, without a master, which epoch the swarm is
// at, whether it is ready to average, whether this peer is behind, and whom
// to load state from.
//
// A Tracker is a state machine with no I/O and no clock of its own, like
// etcd's raft: the caller feeds it reports (gossip in production, node/sim
// in tests) and the current time. Every answer is a function of the reports
// held and now: two Trackers fed the same reports, in any order, answer the
// same for the same now (outputs are sorted by peer id; no map order leaks).
//
// Time. now is the caller's clock as a time.Duration since the Unix epoch
// (time.Duration(time.Now().UnixNano()) in production; virtual time in
// node/sim), the clock Report.Time is on, in milliseconds. Liveness and
// extrapolation use the sender's Time, not the arrival time, so peers that
// received the same reports at different moments still agree; this assumes
// clocks synchronized to well within Config.Expiry (NTP), as hivemind's
// progress tracker does with its DHT time. A report dated more than Expiry
// ahead of now is not live, so a wrong clock cannot keep a report alive.
//
// The swarm epoch is the highest epoch that a strict majority of the live
// peers has reached (see Tracker.SwarmEpoch): a minority, such as one peer
// announcing epoch 10^9, cannot move it. A peer that has not yet loaded the
// swarm's state (a fresh joiner at epoch 0) should not gossip until it has:
// otherwise a wave of joiners larger than the synchronized swarm would pull
// the swarm epoch down and nobody would be Behind.
//
// Readiness in gradients mode follows hivemind's ProgressTracker: the
// swarm's samples for an epoch are each peer's reported samples extrapolated
// at its reported rate to now, and the time to the target is what is left
// over the summed rate. Reported rates are not verified here: a peer
// inflating its rate only brings the average forward; validators score
// that.
package progress
