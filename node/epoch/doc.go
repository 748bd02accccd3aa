// Package epoch is the epoch protocol that every role of a run follows:
// when a peer loads the swarm's state, trains, announces that it is ready,
// averages with a group, and applies, drops or replaces the epoch's update.
// It composes the I/O-free state machines of node/progress (the swarm's
// view), node/matchmaking (groups) and the outcome of node/allreduce rounds
// into one Machine, itself free of I/O and clocks like etcd's raft: the
// caller feeds it reports, matchmaking messages, ticks and the results of
// the work it asked for, and carries out the Actions it returns. A miner
// drives it over libp2p with wall time; node/sim drives thousands of them
// with virtual time.
//
// # Rules
//
// A peer's state is (epoch e, hash H): the parameters it starts epoch e
// from. The rules that keep the swarm on one version:
//
//   - Behind: a strict majority of the live peers is at a later epoch
//     (progress.Tracker.SwarmEpoch): load the majority's state there.
//   - Successor: at least two live peers agree on one state of epoch e+1
//     (a group average is held by every member of its group): load it
//     rather than train e again, or, when it appears while the peer still
//     looks for a group at e, rather than wait out that window. This is
//     how a peer whose round failed, or that was left out of a group,
//     rejoins those that averaged. A group that averaged while only
//     strangers hold a state of e+1 (a part of the swarm it has not met,
//     or fresh identities) keeps its mean for a heartbeat: it loads
//     that state if a vouched peer comes to hold it, and takes its mean
//     otherwise (phase Weighing).
//   - Diverged: the peers at e mostly hold another hash than H, or a strict
//     majority of the live peers is at an earlier epoch e' with a hash this
//     peer did not hold at e' (it went ahead on a minority's lineage, as
//     after a partition): load the majority's state.
//   - Votes: the rules above count the live reports of vouched peers
//     only: this peer, the run's validators, and partners, the peers it
//     completed a round with (at most 4096, the oldest forgotten first;
//     none the validators exclude). Each state's donors are still every
//     peer that offers it, since a load checks the bytes against the hash.
//     So identities that never averaged with a peer, however many, do not
//     choose the state it loads; a successor needs at least one vouched
//     holder. A peer with no vouched peer live but itself (just started,
//     or every partner gone) counts every report: it has nothing else to
//     go by, and a run's validators are its anchor. On a tie at its own
//     epoch a peer keeps its state (never reloads on a tie).
//   - Same base: the matchmaking key includes H, so peers that start an
//     epoch from different states never average together.
//   - Drop, never fork: when averaging fails, a peer restores the epoch's
//     start state and stays at e, so no state of e+1 is ever a dropped
//     update and an averaged state is never replaced by a dropped one. It
//     applies its update alone only when no other peer has been live for a
//     whole report expiry (it is the only miner of the run).
//   - Quorum: a peer applies a group's mean only when its contributors are
//     at least half the peers it expected at the epoch (half the groups,
//     for the delegates' round), so a late group of stragglers never makes
//     a second version while the bulk of the swarm is still averaging. Of
//     the expected peers, no more count than have announced for the epoch
//     from the same state: identities that report the state and never
//     announce cannot starve every mean of its quorum.
//   - Windows: matchmaking windows end on a grid of the collect time on the
//     shared clock, and the window is part of the key: the peers of an
//     epoch close at the same instant and see the same ready set, and a
//     peer that misses a window meets only those that missed it too. A
//     peer joins (or, already collecting, moves down to) an earlier window
//     another contributor announced for while it closes at least T/4 away,
//     so peers that finish within milliseconds on either side of a grid
//     point's T/2 mark still meet.
//   - Validators: a run's trusted validators join groups as aux members
//     and are never counted among the contributors a peer waits for. A
//     validator announces once it hears a contributor, so where every
//     contributor is ready first, collecting goes on for one message
//     delay (ConfirmTimeout) at most while a validator whose report
//     follows the epoch from the same state has not announced.
//   - Across groups: when the epoch's ready peers split into several
//     groups, each group's lowest-id contributor (its delegate) carries the
//     group's mean, weighted by the group's samples, into a second round
//     among the delegates. Their result is the exact weighted mean over
//     every contributor of every group that took part, computed once per
//     element (one owner per span), so all delegates hold the same bits;
//     the other members drop the group's mean and load the delegates'
//     state by the successor rule.
//
// Every wait has a deadline: listening at start, matchmaking (its collect
// deadline and confirmation rounds), and a member's wait for its delegates;
// the caller bounds the rounds and state loads it runs.
package epoch
