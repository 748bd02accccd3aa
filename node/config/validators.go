package config

import (
	"slices"

	"github.com/dtrain-dev/dtrain/node/roster"
	"github.com/libp2p/go-libp2p/core/peer"
)

// checkValidators reports every entry of a list of trusted validators that
// is not a libp2p peer id: a typo there would silently shut a validator
// out of every group.
func checkValidators(c *check, key string, ids []string) {
	for _, id := range ids {
		if _, err := peer.Decode(id); err != nil {
			c.fail(key, "must list peer ids such as 12D3KooW…", id)
		}
	}
}

// checkOwner checks the roster keys: an owner that is a peer id, a
// roster file to keep its rosters in, and no allowlist beside it.
func checkOwner(c *check, owner, rosterFile string, members []string) {
	if owner == "" {
		return
	}
	if _, err := peer.Decode(owner); err != nil {
		c.fail("swarm.owner", "must be a peer id such as 12D3KooW… (dtrain roster key prints one)", owner)
	}
	if rosterFile == "" {
		c.fail("swarm.roster_file", "must name a file when swarm.owner is set", rosterFile)
	}
	if len(members) > 0 {
		c.fail("swarm.members", "a run admits by its owner's roster (swarm.owner) or by this allowlist, not both", members)
	}
}

// Admission is a run's admission rule for netx.Config.Admit: nil for an
// open run (no members listed and no roster book), else whether a peer is
// one of the members, one the book admits (the owner and the members of
// its roster), or a validator. The ids were checked by Validate; one that
// does not decode admits nobody.
func Admission(members, validators []string, book *roster.Book) func(peer.ID) bool {
	if len(members) == 0 && book == nil {
		return nil
	}
	ok := map[peer.ID]bool{}
	for _, s := range append(slices.Clone(members), validators...) {
		if id, err := peer.Decode(s); err == nil {
			ok[id] = true
		}
	}
	if book == nil {
		return func(p peer.ID) bool { return ok[p] }
	}
	return func(p peer.ID) bool { return ok[p] || book.Admits(p) }
}
