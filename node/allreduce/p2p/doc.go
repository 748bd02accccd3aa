// Package p2p runs an allreduce.Round over libp2p streams: RunRound opens
// one stream per member the round sends to, frames each message with netx
// (bounded by allreduce.MaxFrame), feeds what arrives and the clock to the
// round, and ends every stream and goroutine by the round's deadline.
//
// It is the round's only network code, kept apart from node/allreduce so
// that the state machine, and everything that only names its types
// (node/matchmaking, node/config), builds without libp2p.
package p2p
