package miner

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// AuditProtocol is the stream protocol on which a miner of run serves its
// recent committed contributions to the run's validators (node/allreduce/p2p
// Contributions).
func AuditProtocol(run string) protocol.ID { return netx.Protocol(run, "audit") }

// commit encodes the epoch's update once, through the error feedback, and
// builds its Merkle tree (allreduce.Commit): the stage-1 round sends these
// bytes, the miner's announcements carry their root, and the run's
// validators may fetch them to audit what entered the average. An update
// that cannot be committed (not finite) is sent uncommitted, and the
// owners of a committed round leave it out.
func (d *driver) commit() {
	m := d.m
	c, err := allreduce.Commit(d.vec, m.codec, allreduce.DefaultCommitChunk, m.feedback)
	if err != nil {
		m.log.Warn().Err(err).Uint64("epoch", m.epoch).Msg("commit this epoch's update")
		c = nil
	}
	d.contribution = c
	d.mach.SetContribution(c)
}

// groupCommit commits the mean res of group g's round when this miner is
// the group's delegate (epoch.Delegate) in an epoch of several groups: the delegates' round is then
// committed, and its owners checked, like the groups'. Nil otherwise, or
// when the mean cannot be committed (it is not finite; the miner refuses
// to apply it anyway).
func (m *Miner) groupCommit(g matchmaking.Group, res allreduce.Result) *allreduce.Contribution {
	ids := make([]string, len(res.Contributors))
	for k, i := range res.Contributors {
		ids[k] = g.Members[i].ID
	}
	if epoch.Delegate(ids) != m.self {
		return nil
	}
	c, err := allreduce.Commit(res.Vector, m.codec, allreduce.DefaultCommitChunk, nil)
	if err != nil {
		m.log.Warn().Err(err).Uint64("epoch", g.Epoch).Msg("commit the group's mean")
		return nil
	}
	return c
}

// serveContribution serves c to auditors under the root it has in group
// g's matchmaking, the one its announcement there carried, and lets g's
// members fetch it too, to check their owners (checkOwners).
func (m *Miner) serveContribution(g matchmaking.Group, c *allreduce.Contribution) {
	m.audits.Add(allreduce.CommitScope{Run: g.Run, Epoch: g.Epoch, Member: m.self}, c)
	m.checkers.add(g, auditKeep)
}

// auditKeep is how many recent contributions a miner serves, and for the
// members of how many recent groups.
const auditKeep = 2

// auditor reports whether p may fetch this miner's committed
// contributions: a validator of the run, or a member of a recent group.
func (m *Miner) auditor(p peer.ID) bool { return m.validator(p) || m.checkers.allowed(p) }

// validator reports whether p is one of the run's trusted validators.
func (m *Miner) validator(p peer.ID) bool {
	return slices.Contains(m.cfg.Swarm.Validators, p.String())
}

// otherMiners counts the peers on the run's gossip that are not the run's
// validators.
func (m *Miner) otherMiners() int {
	n := 0
	for _, p := range m.gossip.Peers() {
		if !m.validator(p) {
			n++
		}
	}
	return n
}
