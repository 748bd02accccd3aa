package config

import (
	"slices"

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

// Admission is a run's admission rule for netx.Config.Admit: nil for an
// open run (no members listed), else whether a peer is one of the members
// or the validators. The ids were checked by Validate; one that does not
// decode admits nobody.
func Admission(members, validators []string) func(peer.ID) bool {
	if len(members) == 0 {
		return nil
	}
	ok := map[peer.ID]bool{}
	for _, s := range append(slices.Clone(members), validators...) {
		if id, err := peer.Decode(s); err == nil {
			ok[id] = true
		}
	}
	return func(p peer.ID) bool { return ok[p] }
}
