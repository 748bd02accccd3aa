package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// Peers decodes the libp2p ids of g's members, in member order: the peers
// RunRound takes for a round of g.
func Peers(g allreduce.Group) ([]peer.ID, error) {
	ids := make([]peer.ID, len(g.Members))
	for i, m := range g.Members {
		id, err := peer.Decode(m.ID)
		if err != nil {
			return nil, fmt.Errorf("group member %q: %w", m.ID, err)
		}
		ids[i] = id
	}
	return ids, nil
}
