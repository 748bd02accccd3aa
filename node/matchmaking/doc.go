// Package matchmaking forms all-reduce groups without a master: peers ready
// to average for a run and epoch agree on who averages with whom, in what
// order and in which role.
//
// A Matchmaker is a state machine with I/O at the edges, like etcd's raft:
// the caller feeds it announcements, messages and ticks (virtual or wall
// time) and sends the Outgoing messages it returns. The protocol has two
// phases:
//
//  1. Collect. Every peer announces a Ready (gossip in production). Each
//     Matchmaker records the Ready announcements that reach it before the
//     deadline (or until it has seen Config.Expected peers).
//  2. Confirm. At the deadline every peer computes the same partition of
//     its ready set into groups (Partition: peers sorted by a hash of run,
//     epoch and id, cut into balanced groups) and sends its view of its own
//     group to the other members. A group is formed only when every member
//     of the view has sent the identical view in the same round. On a
//     disagreement (different ready sets, a crashed member) the next round
//     uses the intersection of the views received, minus the members that
//     sent nothing; after Config.MaxRounds rounds, or below the minimum
//     size, the Matchmaker fails cleanly and the caller retries next epoch.
//     Rounds keep one schedule: round r ends (r+1) ConfirmTimeouts after
//     collecting ended, on every member, however early it moved on.
//
// Silence is not disagreement. A member silent in a round where every view
// that did arrive agreed may have formed the group: its views were late or
// cut short by a crash, or only its inbound messages were on time. So the
// next view also goes to the silent members, and a formed peer answers any
// later view from a member of its group with its formed view, which a
// member that sent that same view in that round adopts. A member that would
// otherwise give up on such a group (what is left is below MinGroup or just
// itself, or a member that agreed with it went silent) waits for that answer
// instead, until the last round ends (wait.go).
//
// Safety: a peer sends one view per round and forms only in its current
// round, so two peers that formed in the same round with a member in common
// hold the same view. A peer that formed answers later-round views from its
// members with its formed view, and a member whose own view in that round
// was the same adopts it; so, as long as the round timeout exceeds the
// message delay, no two members of a group end with different formed views.
// Under a partition longer than the timeout a member may still fail while
// the others form; the all-reduce round treats it as a peer that failed.
//
// Rotation: the hash includes the epoch, so the groups change every epoch
// and averages mix across the swarm (a random regrouping, the deterministic
// equivalent of Moshpit SGD's grid rotation, Ryabinin et al. 2021).
package matchmaking
