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
// Safety. What holds whatever the delays: a peer sends one view per round,
// each view is a subset of its view the round before, and a group is formed
// only by a peer holding that view from every member in one round, or
// adopted from such a peer by a member that sent it in that round. So every
// formed group is the view each of its members sent in the round it was
// formed; two formed groups with a member in common are identical if formed
// in the same round, else the later one lies inside the earlier; and every
// peer is done at most MaxRounds ConfirmTimeouts after collecting ends.
//
// If the members close collecting together and every message between them
// takes less than ConfirmTimeout, more holds: when a live member forms a
// group, every other live member of it forms that group. Every view then
// reaches its members before the round ends there, so a member hears
// nothing from another only if the other left it out of its view or
// crashed; a crash while sending its view leaves some members without it,
// and those ask the members that formed and adopt their answer. And when
// the messages to some members are slow besides (their inbound links), a
// slow member still ends in the group the others formed with it if its
// round trip to one of them is under MaxRounds-1 ConfirmTimeouts: it
// waits, asks and adopts. (TestRandomLatencies checks both: every message
// under a ConfirmTimeout, with crashes; and messages to slow members under
// 1.5 ConfirmTimeouts, all others under 0.5.)
//
// What does not hold: under arbitrary delays no protocol with a deadline can
// make every member of a group end alike (the last message of any exchange
// can be late). Here, a member whose round trip to the formed members
// exceeds the rounds left fails while they hold a group with it; a member
// whose own views reach MinGroup or more of the others late can hold the
// group it formed while they, having never heard from it, form a smaller
// one without it; a member that crashes while sending its views in one of
// the last two rounds can leave those that missed them out of rounds before
// an answer comes; and members that close collecting at different times
// (Config.Expected) lose that difference from the delay they tolerate. The
// all-reduce round treats a member that is not there as a peer that failed.
//
// Rotation: the hash includes the epoch, so the groups change every epoch
// and averages mix across the swarm (a random regrouping, the deterministic
// equivalent of Moshpit SGD's grid rotation, Ryabinin et al. 2021).
package matchmaking
