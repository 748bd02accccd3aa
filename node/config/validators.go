package config

import "github.com/libp2p/go-libp2p/core/peer"

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
